#!/usr/bin/env bash
# The two-replica fault test: PostgreSQL with the sample CRM, two pgcloak
# replicas (built with go build) writing access logs, HAProxy balancing
# TCP in front; restricted sessions run a mixed workload through the
# balancer while one replica is killed with SIGKILL. It checks that no
# statement was answered without its access record, that each replica's
# chain verifies, and that a rules change reaches both replicas
# (cmd/pgcloak/ha_test.go, build tag ha). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:/usr/sbin"

if ! command -v haproxy >/dev/null; then
  echo "ha: installing haproxy"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
haproxy -v | sed -n 1p

echo "ha: go test -tags ha (two replicas behind HAProxy, one killed mid-load)"
go vet -tags ha ./cmd/pgcloak/
go test -tags ha -race -count=1 -timeout 5m -run 'TestTwoReplicasBehindHAProxy' -v ./cmd/pgcloak/ 2>&1 |
  grep -v '^=== RUN\|^=== PAUSE\|^=== CONT'

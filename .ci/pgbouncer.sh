#!/usr/bin/env bash
# pgcloak in front of PgBouncer (pgcloak -> PgBouncer -> PostgreSQL), the
# supported way to pool for connect-per-request applications: SCRAM and
# MD5 authentication relayed through PgBouncer, the rules, cancel, the
# session settings restricted sessions rest on, no state left to the next
# client, and pgcloak with rules refusing to start in front of transaction
# or statement pooling (cmd/pgcloak/pgbouncer_test.go, build tag
# pgbouncer; docs/deploy.md, "Pooling"). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin:/usr/sbin"

if ! command -v pgbouncer >/dev/null; then
  echo "pgbouncer: installing pgbouncer"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
fi
pgbouncer --version | sed -n 1p

echo "pgbouncer: go test -tags pgbouncer (pgcloak in front of PgBouncer)"
go vet -tags pgbouncer ./cmd/pgcloak/
go test -tags pgbouncer -race -count=1 -timeout 10m -run 'TestPgBouncer' -v ./cmd/pgcloak/ 2>&1 |
  grep -v '^=== RUN\|^=== PAUSE\|^=== CONT'

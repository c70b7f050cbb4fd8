#!/usr/bin/env bash
# Generative leak fuzzing (issue 9, rewrite/sqlsmith_test.go): SQLsmith
# writes random queries over the sample CRM, and each runs through pgcloak
# as three restricted logins in both protocols, with canaries planted; no
# canary may come back, pgcloak must keep serving and no session may end.
#
#   .ci/sqlsmith.sh [SEEDS [QUERIES]]
#
# SEEDS is a comma-separated list (default 1,2,3), QUERIES the number of
# queries a seed (default 700); SQLSMITH_SEEDS and SQLSMITH_QUERIES work
# too. The defaults give 2,100 queries in a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

if ! command -v sqlsmith >/dev/null; then
  echo "ci: installing sqlsmith"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq sqlsmith
fi

export SQLSMITH_SEEDS="${1:-${SQLSMITH_SEEDS:-1,2,3}}"
export SQLSMITH_QUERIES="${2:-${SQLSMITH_QUERIES:-700}}"
echo "ci: sqlsmith seeds $SQLSMITH_SEEDS, $SQLSMITH_QUERIES queries a seed"
go test -tags sqlsmith -count=1 -run 'TestSQLsmith' -timeout 60m -v ./rewrite/ | grep -v '^=== \(RUN\|PAUSE\|CONT\|NAME\)'

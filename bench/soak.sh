#!/usr/bin/env bash
# Soak: SOAK_SESSIONS concurrent sessions of mixed restricted roles (sales
# reps, support, consultant, warehouse, analyst, disclosure export, senior
# marketing) through one pgcloak with the CRM rules and the access log, in
# two phases of SOAK_PHASE each. Every statement a session runs is one its
# role may run, but one in four, which every one of these roles is refused
# (and must be). After each phase every session is closed and pgcloak's
# goroutines, open file descriptors and resident memory are read from its
# /metrics: what phase 2 leaves must be what phase 1 left. The access log
# must verify. Not part of CI: about five minutes with the defaults, and
# 1,000 PostgreSQL backends.
#
# Usage: bench/soak.sh
#
# Environment (all optional):
#   SOAK_SESSIONS=1000   concurrent sessions (PostgreSQL gets max_connections
#                        SOAK_SESSIONS+50)
#   SOAK_PHASE=90s       length of each of the two phases
#   SOAK_THINK=1s        mean pause between a session's statements
#                        (uniform in 0..2×SOAK_THINK)
#
# The figures in docs/benchmarks.md ("Soak") come from this script. The
# test it runs is cmd/pgcloak/soak_test.go (build tag soak).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
need=$(( ${SOAK_SESSIONS:-1000} * 3 + 200 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || { echo "soak: needs ulimit -n $need (pgcloak holds two sockets per session)"; exit 1; }
fi
go test -tags soak -count=1 -timeout 60m -run TestSoak -v ./cmd/pgcloak/ 2>&1 | grep -v '^=== RUN'

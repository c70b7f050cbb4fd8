#!/usr/bin/env bash
# Native Go fuzzing of the rewriter (issue 9, rewrite/fuzz_test.go) for a
# fixed budget: FUZZTIME (default 60s). The seed corpus (the hostile
# queries and the soundness suite) also runs in every plain `go test`.
# A failing input is written to rewrite/testdata/fuzz/FuzzRewrite/: commit
# it, and it stays in the seed corpus.
#
# The first fuzzing build compiles pg_query's parser again with the
# fuzzer's instrumentation; that takes minutes once.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

echo "ci: go test -run XXX -fuzz FuzzRewrite -fuzztime ${FUZZTIME:-60s} ./rewrite/"
go test -run XXX -fuzz FuzzRewrite -fuzztime "${FUZZTIME:-60s}" -timeout 60m ./rewrite/

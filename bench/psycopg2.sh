#!/usr/bin/env bash
# psycopg2 get-by-key benchmark (issue 11's "psycopg2 get-by-key as the
# sales rep / as the DBA / direct" row): a Python program
# (bench/getbykey.py) opens one connection and looks up CALLS customers by
# a random id, one statement per call with the id inline (psycopg2 sends
# the literal in the text: the simple protocol), against three targets,
# interleaved over ROUNDS with the order rotating:
#
#   direct   PostgreSQL directly, as the superuser: no policy at all
#   dana     through pgcloak with the CRM rules, as dana (dba,
#            unrestricted: pass-through)
#   alice    through pgcloak with the CRM rules, as alice (sales_rep,
#            north): every statement rewritten (a random id is a north
#            customer about one time in four; the others return no row)
#
# Per target, the median over the rounds of: the mean and the median ms
# per call, the Python process's CPU µs per call, pgcloak's CPU µs per
# call, and the CPU µs per call of everything the benchmark runs
# (postgres, pgcloak, Python; Python's start-up and connect included,
# spread over CALLS); then alice ÷ dana and alice ÷ direct.
# Target (issue 11): alice ≤ 1.3× dana.
#
# Usage: bench/psycopg2.sh
#
# Environment (all optional; lib.sh has the common ones):
#   ROUNDS=5           rounds; each round runs every target once
#   CALLS=5000         timed calls per run
#   WARMUP=200         calls before the timed ones in every run (not counted)
#   CUSTOMERS=25000    customers in the sample CRM
#   PYTHON=/usr/bin/python3   a Python 3 with psycopg2 (Debian:
#                      apt-get install python3-psycopg2)
#   MAX_FOREIGN=25, RETRIES=1   see lib.sh (measure)
#   RESULTS=FILE       also copy the raw results to FILE, one line per run:
#                      target round calls connect-ms mean-ms median-ms
#                      p99-ms rows client-cpu-µs-per-call foreign-cpu-%
#                      pgcloak-cpu-µs-per-call all-cpu-µs-per-call
#
# Smoke run: ROUNDS=1 CALLS=300 WARMUP=20 CUSTOMERS=2000 bench/psycopg2.sh
set -euo pipefail

# One compound command: bash parses the whole script before running it.
{

ROUNDS=${ROUNDS:-5}
CALLS=${CALLS:-5000}
WARMUP=${WARMUP:-200}
PYTHON=${PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=$(command -v python3 || true)
RESULTS=${RESULTS:-}
TARGETS=(direct dana alice)

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -n $PYTHON ]] && "$PYTHON" -c 'import psycopg2' 2>/dev/null ||
	die "no psycopg2 for ${PYTHON:-python3}: apt-get install python3-psycopg2 (or set PYTHON)"

bench_init psycopg2-bench
start_postgres
build_crmgen
build_pgcloak
load_crm crm
start_pgcloak rules --upstream "127.0.0.1:$pg_port" \
	--rules "$repo/examples/crm/rules.yaml" --catalog-dsn "$(dsn crm)"
cport=${cloak_port[rules]} cpid=${cloak_pid[rules]}
wait_sql pgcloak "$cport" alice crm "$cpid"

target_dsn() {
	case $1 in
	direct) echo "host=127.0.0.1 port=$pg_port user=bench dbname=crm sslmode=disable" ;;
	*) echo "host=127.0.0.1 port=$cport user=$1 dbname=crm sslmode=disable" ;;
	esac
}

# alice sees only the north through pgcloak, dana everything.
got=$("$PGBIN/psql" -h 127.0.0.1 -p "$cport" -U alice -d crm -XAtqc "select string_agg(distinct region, ',') from customers")
[[ $got == north ]] || die "alice sees regions '$got' through pgcloak, not north only"
got=$("$PGBIN/psql" -h 127.0.0.1 -p "$cport" -U dana -d crm -XAtqc "select count(distinct region) from customers")
((got > 1)) || die "dana sees $got region(s) through pgcloak"

# run_target TARGET ROUND: one run of getbykey.py; sets LINE (its output)
# and FOREIGN, OURS, WATCHED (pgcloak's ticks).
LINE=
run_target() {
	local out=$tmp/getbykey.out
	WATCH_PID=$cpid run_client "$out" "$PYTHON" "$repo/bench/getbykey.py" "$(target_dsn "$1")" \
		"$CALLS" "$CUSTOMERS" "$2" "$WARMUP" || die "getbykey.py as $1 failed: $(tail -n5 "$out")"
	LINE=$(tail -n1 "$out")
	[[ $(wc -w <<<"$LINE") == 7 ]] || die "getbykey.py as $1: unexpected output: $(cat "$out")"
}

total=$((ROUNDS * ${#TARGETS[@]}))
log "$total runs of $CALLS calls (${ROUNDS} rounds x ${#TARGETS[@]} targets)"
results=$tmp/results.txt
: >"$results"
n=0
for ((r = 1; r <= ROUNDS; r++)); do
	rotated "$r" 0 "${TARGETS[@]}"
	for t in "${ORDER[@]}"; do
		n=$((n + 1))
		# The same seed for every target of a round: the same ids.
		measure "[$n/$total] $t" run_target "$t" "$r"
		[[ $t == direct ]] && WATCHED=0
		read -r _ conn_ms mean_ms med_ms p99_ms rows cli_us <<<"$LINE"
		cloak_us=$(awk -v w="$WATCHED" -v hz="$hz" -v n="$CALLS" 'BEGIN {printf "%.1f", w / hz * 1e6 / n}')
		all_us=$(awk -v o="$OURS" -v hz="$hz" -v n="$CALLS" 'BEGIN {printf "%.1f", o / hz * 1e6 / n}')
		echo "$t $r $LINE $FOREIGN $cloak_us $all_us" >>"$results"
		log "[$n/$total] round $r  $t  mean ${mean_ms} ms  median ${med_ms} ms  p99 ${p99_ms} ms  rows $rows  connect ${conn_ms} ms  CPU/call: python ${cli_us} µs, pgcloak ${cloak_us} µs, all ${all_us} µs  (others: $FOREIGN% CPU)"
	done
done
[[ -n $RESULTS ]] && cp "$results" "$RESULTS"

# --- report ----------------------------------------------------------------

med() { awk -v t="$1" -v f="$2" '$1 == t {print $f}' "$results" | median; }

echo
echo "psycopg2 get-by-key, $CALLS calls per run on one connection, simple protocol, $CUSTOMERS customers; median of $ROUNDS round(s); $(nproc) cores shared by client, proxy and server"
echo
echo "| target | mean ms/call | median ms/call | p99 ms | Python CPU µs/call | pgcloak CPU µs/call | all CPU µs/call |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in "${TARGETS[@]}"; do
	printf '| %s | %.3f | %.3f | %.3f | %.1f | %.1f | %.1f |\n' "$t" "$(med "$t" 5)" "$(med "$t" 6)" "$(med "$t" 7)" \
		"$(med "$t" 9)" "$(med "$t" 11)" "$(med "$t" 12)"
done
echo
for f in 5:mean 6:median 12:all-CPU; do
	awk -v what="${f#*:}" -v a="$(med alice "${f%%:*}")" -v d="$(med dana "${f%%:*}")" -v x="$(med direct "${f%%:*}")" \
		'BEGIN {printf "%s per call: alice / dana %.2f (target <= 1.3), alice / direct %.2f, dana / direct %.2f\n", what, a / d, a / x, d / x}'
done
foreign_summary "$results" 10

exit
}

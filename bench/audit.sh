#!/usr/bin/env bash
# Access log benchmark: the same pgcloak with the access log off and on
# (file sink), A/B interleaved, on two workloads:
#
#   pass   pgbench -S (select-only) through pgcloak without rules, as in
#          bench/passthrough.sh. Off, every session is a byte relay; on,
#          every statement is decoded, described and recorded.
#   crm    bench/crm_select.sql as alice (a north sales rep) through
#          pgcloak with the CRM rules, as in bench/crm.sh: every statement
#          rewritten, and on, recorded.
#
# Usage: bench/audit.sh
#
# Environment (all optional):
#   DURATION=10        seconds per pgbench run
#   ROUNDS=3           rounds; each runs every cell off and on
#   WARMUP=3           seconds of warm-up per target and mode
#   CLIENTS="8"        client counts
#   MODES="simple prepared"   pgbench query modes
#   WORKLOADS="pass crm"
#   SCALE=10           pgbench -i scale factor (pass)
#   CUSTOMERS=25000    customers in the sample CRM (crm)
#   PGBIN=...          PostgreSQL binaries (default: pg_config --bindir, then
#                      /usr/lib/postgresql/*/bin)
#   PGCLOAK_BIN=...    use this pgcloak binary instead of building the checkout
#   RUN_USER=nobody    unprivileged user for postgres when root
#   KEEP=1             keep the temp dir (logs, access logs)
#   RESULTS=FILE       also copy the raw results to FILE, one line per run:
#                      workload log mode clients round tps foreign-cpu-% pgcloak-µs/tx
#
# Smoke run: DURATION=2 ROUNDS=1 WARMUP=1 bench/audit.sh
#
# Caveat: pgbench, postgres and pgcloak share this machine's cores; the
# access log's writer and its disk writes compete with them too.
set -euo pipefail

{

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-"8"}
MODES=${MODES:-"simple prepared"}
WORKLOADS=${WORKLOADS:-"pass crm"}
SCALE=${SCALE:-10}
CUSTOMERS=${CUSTOMERS:-25000}
RESULTS=${RESULTS:-}

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init audit-bench
mkdir -p "$tmp/audit"
start_postgres
build_pgcloak
build_crmgen
if [[ " $WORKLOADS " == *" pass "* ]]; then load_pgbench bench "$SCALE"; fi
if [[ " $WORKLOADS " == *" crm "* ]]; then load_crm crm; fi

# --- one pgcloak per (workload, access log) --------------------------------------

start_cloak() { # start_cloak WORKLOAD off|on
	local w=$1 a=$2 args
	args=(--upstream "127.0.0.1:$pg_port")
	[[ $w == crm ]] && args+=(--rules "$repo/examples/crm/rules.yaml" --catalog-dsn "$(dsn crm)")
	[[ $a == on ]] && args+=(--audit-file "$tmp/audit/$w.log")
	start_pgcloak "$w.$a" "${args[@]}"
}
user_of() { [[ $1 == crm ]] && echo alice || echo bench; }
db_of() { [[ $1 == crm ]] && echo crm || echo bench; }
read -r -a workloads <<<"$WORKLOADS"
for w in "${workloads[@]}"; do
	for a in off on; do start_cloak "$w" "$a"; done
done
for k in "${!cloak_port[@]}"; do
	w=${k%.*}
	wait_sql "pgcloak.$k" "${cloak_port[$k]}" "$(user_of "$w")" "$(db_of "$w")" "${cloak_pid[$k]}"
done

# --- runs --------------------------------------------------------------------------

# run_target sets TPS, FOREIGN (% of the machine's CPU other processes
# took) and CLOAK_US (pgcloak's CPU time per transaction, in µs: unlike
# TPS, it hardly depends on what else runs on the machine).
CLOAK_US=
run_target() { # run_target WORKLOAD off|on MODE CLIENTS SECONDS
	local w=$1 a=$2 mode=$3 c=$4 secs=$5 j=1
	((c > 1)) && j=2
	local args=(-n -M "$mode" -c "$c" -j "$j" -T "$secs" -h 127.0.0.1 -p "${cloak_port[$w.$a]}" -U "$(user_of "$w")")
	if [[ $w == crm ]]; then
		args+=(-f "$repo/bench/crm_select.sql" -D "customers=$CUSTOMERS")
	else
		args+=(-S)
	fi
	WATCH_PID=${cloak_pid[$w.$a]} run_pgbench "${args[@]}" "$(db_of "$w")"
	CLOAK_US=$(awk -v t="$WATCHED" -v hz="$hz" -v n="$TXNS" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
}

read -r -a modes <<<"$MODES"
read -r -a clients <<<"$CLIENTS"
total=$((ROUNDS * ${#workloads[@]} * ${#modes[@]} * ${#clients[@]} * 2))
log "$total runs of ${DURATION}s, about $(((total * (DURATION + 1) + 59) / 60)) min"
if ((WARMUP > 0)); then
	for w in "${workloads[@]}"; do
		for m in "${modes[@]}"; do
			for a in off on; do run_target "$w" "$a" "$m" 8 "$WARMUP"; done
		done
	done
fi
results=$tmp/results.txt
: >"$results"
n=0
for ((r = 1; r <= ROUNDS; r++)); do
	for w in "${workloads[@]}"; do
		for m in "${modes[@]}"; do
			for c in "${clients[@]}"; do
				order=(off on)
				((r % 2 == 0)) && order=(on off) # neither always runs first
				for a in "${order[@]}"; do
					n=$((n + 1))
					run_target "$w" "$a" "$m" "$c" "$DURATION"
					printf '%s %s %s %s %s %s %s %s\n' "$w" "$a" "$m" "$c" "$r" "$TPS" "$FOREIGN" "$CLOAK_US" >>"$results"
					log "[$n/$total] round $r  $w  access log $a  -M $m  -c $c  tps $TPS  pgcloak $CLOAK_US µs/tx  (others: $FOREIGN% CPU)"
				done
			done
		done
	done
done
[[ -n $RESULTS ]] && cp "$results" "$RESULTS"

for w in "${workloads[@]}"; do
	"$PGCLOAK_BIN" audit verify --open "$tmp/audit/$w"*.log >"$tmp/verify.$w" 2>&1 ||
		die "the $w access log does not verify: $(cat "$tmp/verify.$w")"
done

med() { # med WORKLOAD off|on MODE CLIENTS [FIELD]: median of a field (TPS by default)
	awk -v w="$1" -v a="$2" -v m="$3" -v c="$4" -v f="${5:-6}" '$1 == w && $2 == a && $3 == m && $4 == c {print $f}' "$results" | median
}

echo
echo "access log off vs on (file sink), median TPS of $ROUNDS run(s) x ${DURATION}s; $(nproc) cores shared by client, proxy and server"
echo
printf '| %-8s | %-8s | %7s | %10s | %10s | %7s | %14s | %13s | %9s |\n' workload mode clients "tps off" "tps on" "on/off" \
	"pgcloak µs/tx off" "pgcloak µs/tx on" "added µs"
echo '|----------|----------|--------:|-----------:|-----------:|--------:|---------------:|--------------:|----------:|'
for w in "${workloads[@]}"; do
	for m in "${modes[@]}"; do
		for c in "${clients[@]}"; do
			off=$(med "$w" off "$m" "$c")
			on=$(med "$w" on "$m" "$c")
			uoff=$(med "$w" off "$m" "$c" 8)
			uon=$(med "$w" on "$m" "$c" 8)
			awk -v w="$w" -v m="$m" -v c="$c" -v off="$off" -v on="$on" -v uoff="$uoff" -v uon="$uon" 'BEGIN {
				printf "| %-8s | %-8s | %7s | %10.0f | %10.0f | %7.3f | %14.1f | %13.1f | %9.1f |\n", w, m, c, off, on, on / off, uoff, uon, uon - uoff}'
		done
	done
done
for w in "${workloads[@]}"; do
	printf '\n%s access log: %s records in %s; %s\n' "$w" "$(cat "$tmp/audit/$w"*.log | wc -l)" \
		"$(du -sh "$tmp/audit" | cut -f1) (all logs)" "$(tail -n1 "$tmp/verify.$w")"
done
awk '{if ($7 > max) max = $7; sum += $7}
	END {printf "\nCPU taken by processes outside the benchmark during a run: mean %.1f%%, max %.1f%% of the machine\n", sum / NR, max}' "$results"
exit
}

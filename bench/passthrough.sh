#!/usr/bin/env bash
# Pass-through benchmark: pgbench -S (select-only) against PostgreSQL
# directly, through PgBouncer in session mode and through pgcloak, side by
# side on this machine, A/B interleaved.
#
# Usage: bench/passthrough.sh
#
# Environment (all optional):
#   DURATION=10        seconds per pgbench run
#   ROUNDS=3           rounds; each round runs every cell once per target
#   WARMUP=3           seconds of warm-up per target before the rounds
#   CLIENTS="1 8 32"   client counts
#   MODES="simple prepared"   pgbench query modes
#   SCALE=10           pgbench -i scale factor
#   PGBIN=...          PostgreSQL binaries (default: pg_config --bindir, then
#                      /usr/lib/postgresql/*/bin)
#   PGBOUNCER=pgbouncer  pgbouncer binary
#   PGCLOAK_BIN=...    use this pgcloak binary instead of building the checkout
#   RUN_USER=nobody    unprivileged user for postgres and pgbouncer when root
#   KEEP=1             keep the temp dir (logs, per-transaction latencies)
#   MAX_FOREIGN=25     a run during which processes outside the benchmark
#   RETRIES=1          took more than MAX_FOREIGN % of the machine's CPU is
#                      run again after a 10 s pause, at most RETRIES times
#                      (the last try is kept, and counted in the report)
#   NICE=-10           when root, run everything of the benchmark (postgres,
#                      pgbouncer, pgcloak, pgbench) at this niceness, so that
#                      other work on a shared machine disturbs it less; 0 = off
#   QUIET=5            the report also gives medians of the quiet runs only:
#                      those during which others took <= QUIET % of the CPU
#   REPORT_FROM=DIR    print the report of a kept run (KEEP=1) again, from DIR
#   SETUP_ONLY=1       start everything, print the ports, and wait (for
#                      profiling by hand); Ctrl-C or SIGTERM cleans up
#   RESULTS=FILE       also copy the raw results to FILE, one line per run:
#                      target mode clients round tps foreign-cpu-%
#
# Smoke run: DURATION=2 ROUNDS=1 WARMUP=1 bench/passthrough.sh
#
# Output: median TPS per target and cell with the ratios, the same over the
# quiet runs only, and at 1 client the p50/p99/p99.9 latency from pgbench's
# per-transaction logs and the p99 each proxy adds over direct (paired by
# round). docs/benchmarks.md has the figures and how to read them.
#
# Caveat: pgbench, postgres, pgbouncer and pgcloak all share this machine's
# cores, so every figure includes the client's and the proxies' CPU competing
# with the server's.
set -euo pipefail

# The whole script is one compound command, so bash parses it entirely before
# it runs: editing the file during a run does not break that run.
{

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-"1 8 32"}
MODES=${MODES:-"simple prepared"}
SCALE=${SCALE:-10}
MAX_FOREIGN=${MAX_FOREIGN:-25}
RETRIES=${RETRIES:-1}
NICE=${NICE:--10}
QUIET=${QUIET:-5}
RESULTS=${RESULTS:-}
TARGETS=(direct pgbouncer pgcloak)

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- report ----------------------------------------------------------------
# Reads $results (target mode clients round tps foreign-cpu-%) and the
# per-transaction latency logs in $latdir; see REPORT_FROM.

# med TARGET MODE CLIENTS [QUIET]: median TPS, of the quiet runs only if QUIET
med() {
	awk -v t="$1" -v m="$2" -v c="$3" -v q="${4:-}" \
		'$1 == t && $2 == m && $3 == c && (q == "" || $6 <= q) {print $5}' "$results" | median -
}
nquiet() { awk -v t="$1" -v m="$2" -v c="$3" -v q="$QUIET" '$1 == t && $2 == m && $3 == c && $6 <= q {n++} END {print n + 0}' "$results"; }
tps_row() { # tps_row MODE CLIENTS D B P [EXTRA]
	awk -v m="$1" -v c="$2" -v d="$3" -v b="$4" -v p="$5" -v x="${6:-}" '
		function r(a, b) {return (a == "-" || b == "-") ? "-" : sprintf("%.3f", a / b)}
		function n(a) {return a == "-" ? "-" : sprintf("%.0f", a)}
		BEGIN {printf "| %-8s | %7s | %10s | %10s | %10s | %14s | %17s | %16s |%s\n",
			m, c, n(d), n(b), n(p), r(p, d), r(p, b), r(b, d), x}'
}
tps_head() {
	printf '| %-8s | %7s | %10s | %10s | %10s | %14s | %17s | %16s |%s\n' \
		mode clients direct pgbouncer pgcloak pgcloak/direct pgcloak/pgbouncer pgbouncer/direct "${1:-}"
	echo "|----------|--------:|-----------:|-----------:|-----------:|---------------:|------------------:|-----------------:|${2:-}"
}

report() {
	echo
	echo "pgbench -S, scale $SCALE, $ROUNDS round(s) of ${DURATION}s runs; $(nproc) cores shared by client, proxies and server; niceness $NICENESS"
	echo
	echo "median TPS, all runs"
	echo
	tps_head
	for m in "${modes[@]}"; do
		for c in "${clients[@]}"; do
			tps_row "$m" "$c" "$(med direct "$m" "$c")" "$(med pgbouncer "$m" "$c")" "$(med pgcloak "$m" "$c")"
		done
	done

	# Anything else running on the machine skews the figures: show it, and
	# the medians of the runs it left alone.
	awk -v lim="$MAX_FOREIGN" '{if ($6 > max) max = $6; if ($6 > lim) over++; sum += $6}
		END {printf "\nCPU taken by processes outside the benchmark during a run: mean %.1f%%, max %.1f%% of the machine; %d run(s) over %s%%\n",
			sum / NR, max, over, lim}' "$results"
	echo
	echo "median TPS, quiet runs only (others took <= $QUIET% of the CPU)"
	echo
	tps_head ' quiet runs d/b/p |' '------------------:|'
	for m in "${modes[@]}"; do
		for c in "${clients[@]}"; do
			tps_row "$m" "$c" "$(med direct "$m" "$c" "$QUIET")" "$(med pgbouncer "$m" "$c" "$QUIET")" \
				"$(med pgcloak "$m" "$c" "$QUIET")" \
				"$(printf ' %17s |' "$(nquiet direct "$m" "$c")/$(nquiet pgbouncer "$m" "$c")/$(nquiet pgcloak "$m" "$c")")"
		done
	done

	[[ " ${clients[*]} " == *" 1 "* ]] || return 0
	# Percentiles of each 1-client run's per-transaction latencies (µs,
	# field 3 of pgbench's log): target mode round p50 p99 p99.9 foreign
	local lat=$latdir/percentiles.txt f b
	: >"$lat"
	for f in "$latdir"/*.r[0-9]*; do
		[[ -e $f ]] || continue
		b=${f##*/}
		sort -n -k3,3 "$f" | awk -v name="$b" -v res="$results" '
			BEGIN {split(name, a, "."); t = a[1]; m = a[2]; r = substr(a[3], 2)
				while ((getline line < res) > 0) {split(line, x, " ")
					if (x[1] == t && x[2] == m && x[3] == 1 && x[4] == r) fo = x[6]}}
			{v[NR] = $3}
			function p(q,  i) {i = int(NR * q / 100 + 0.999999); if (i < 1) i = 1; return v[i]}
			END {if (NR) print t, m, r, p(50), p(99), p(99.9), fo}' >>"$lat"
	done
	echo
	echo "latency at 1 client (µs): median over the rounds of each run's percentiles;"
	echo "p99 added = median over the rounds of (p99 of the target - p99 of direct in the same round)"
	echo
	printf '| %-8s | %-9s | %6s | %6s | %6s | %9s | %22s |\n' mode target p50 p99 p99.9 "p99 added" "p99 added, quiet (n)"
	echo '|----------|-----------|-------:|-------:|-------:|----------:|-----------------------:|'
	local m t p50 p99 p999 added quiet
	for m in "${modes[@]}"; do
		for t in "${TARGETS[@]}"; do
			p50=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m {print $4}' "$lat" | median -)
			p99=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m {print $5}' "$lat" | median -)
			p999=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m {print $6}' "$lat" | median -)
			added=- quiet=-
			if [[ $t != direct ]]; then
				added=$(awk -v t="$t" -v m="$m" '$2 == m && $1 == "direct" {d[$3] = $5} $2 == m && $1 == t {x[$3] = $5}
					END {for (r in x) if (r in d) print x[r] - d[r]}' "$lat" | median -)
				quiet=$(awk -v t="$t" -v m="$m" -v q="$QUIET" '$2 == m && $1 == "direct" && $7 <= q {d[$3] = $5}
					$2 == m && $1 == t && $7 <= q {x[$3] = $5}
					END {for (r in x) if (r in d) print x[r] - d[r]}' "$lat" | median -)
				quiet="$quiet ($(awk -v t="$t" -v m="$m" -v q="$QUIET" '$2 == m && $1 == "direct" && $7 <= q {d[$3] = 1}
					$2 == m && $1 == t && $7 <= q && ($3 in d) {n++} END {print n + 0}' "$lat"))"
			fi
			printf '| %-8s | %-9s | %6s | %6s | %6s | %9s | %22s |\n' "$m" "$t" "$p50" "$p99" "$p999" "$added" "$quiet"
		done
	done
}

if [[ -n ${REPORT_FROM:-} ]]; then
	# shellcheck source=/dev/null
	source "$REPORT_FROM/meta"
	results=$REPORT_FROM/results.txt latdir=$REPORT_FROM/lat
	read -r -a modes <<<"$MODES"
	read -r -a clients <<<"$CLIENTS"
	report
	exit
fi

bench_init bench
start_postgres
start_pgbouncer session session bench
build_pgcloak
start_pgcloak pass --upstream "127.0.0.1:$pg_port"
load_pgbench bench "$SCALE"
pg_port_=$pg_port bouncer_port_=${bouncer_port[session]} cloak_port_=${cloak_port[pass]}
wait_sql pgbouncer "$bouncer_port_" bench bench "${bouncer_pid[session]}"
wait_sql pgcloak "$cloak_port_" bench bench "${cloak_pid[pass]}"
cloak_pid_=${cloak_pid[pass]} bouncer_pid_=${bouncer_pid[session]}
mkdir -p "$tmp/lat"

port_of() {
	case $1 in
	direct) echo "$pg_port_" ;;
	pgbouncer) echo "$bouncer_port_" ;;
	pgcloak) echo "$cloak_port_" ;;
	esac
}

# run_target TARGET MODE CLIENTS SECONDS [LOGPREFIX]: pgbench -S; sets TPS
# and FOREIGN (lib.sh).
run_target() {
	local target=$1 mode=$2 c=$3 secs=$4 prefix=${5:-} j=1
	((c > 1)) && j=2
	local args=(-S -n -M "$mode" -c "$c" -j "$j" -T "$secs" -h 127.0.0.1 -p "$(port_of "$target")" -U bench)
	if [[ -n $prefix ]]; then
		rm -f "$prefix".*
		args+=(-l --log-prefix="$prefix")
	fi
	LATDIR=$tmp/lat run_pgbench "${args[@]}" bench
}

if [[ ${SETUP_ONLY:-0} == 1 ]]; then
	log "ready: direct 127.0.0.1:$pg_port_, pgbouncer 127.0.0.1:$bouncer_port_, pgcloak 127.0.0.1:$cloak_port_ (pid $cloak_pid_), user bench, database bench"
	echo "PG_PORT=$pg_port_ BOUNCER_PORT=$bouncer_port_ CLOAK_PORT=$cloak_port_ CLOAK_PID=$cloak_pid_ BOUNCER_PID=$bouncer_pid_ PG_PID=$pg_pid"
	sleep infinity &
	bench_pid=$!
	wait "$bench_pid" || true
	exit 0
fi

# --- runs ------------------------------------------------------------------

read -r -a modes <<<"$MODES"
read -r -a clients <<<"$CLIENTS"
declare -p SCALE DURATION ROUNDS NICENESS MODES CLIENTS MAX_FOREIGN >"$tmp/meta"
latdir=$tmp/lat
ncells=$((${#modes[@]} * ${#clients[@]}))
total=$((ROUNDS * ncells * ${#TARGETS[@]}))
log "$total runs of ${DURATION}s (${ROUNDS} rounds x ${ncells} cells x ${#TARGETS[@]} targets), about $(((total * (DURATION + 1) + 59) / 60)) min"

if ((WARMUP > 0)); then
	for t in "${TARGETS[@]}"; do
		for m in "${modes[@]}"; do run_target "$t" "$m" 8 "$WARMUP"; done
	done
fi

results=$tmp/results.txt
: >"$results"
n=0
for ((r = 1; r <= ROUNDS; r++)); do
	cell=0
	for m in "${modes[@]}"; do
		for c in "${clients[@]}"; do
			rotated "$r" "$cell" "${TARGETS[@]}"
			for t in "${ORDER[@]}"; do
				prefix=
				((c == 1)) && prefix=$tmp/lat/$t.$m.r$r
				n=$((n + 1))
				measure "[$n/$total] $t -M $m -c $c" run_target "$t" "$m" "$c" "$DURATION" "$prefix"
				printf '%s %s %s %s %s %s\n' "$t" "$m" "$c" "$r" "$TPS" "$FOREIGN" >>"$results"
				log "[$n/$total] round $r  $t  -M $m  -c $c  tps $TPS  (others: $FOREIGN% CPU)"
			done
			cell=$((cell + 1))
		done
	done
done
[[ -n $RESULTS ]] && cp "$results" "$RESULTS"

report

exit
}

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
PGBOUNCER=${PGBOUNCER:-pgbouncer}
RUN_USER=${RUN_USER:-nobody}
KEEP=${KEEP:-0}
MAX_FOREIGN=${MAX_FOREIGN:-25}
RETRIES=${RETRIES:-1}
NICE=${NICE:--10}
QUIET=${QUIET:-5}
RESULTS=${RESULTS:-}
TARGETS=(direct pgbouncer pgcloak)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- report ----------------------------------------------------------------
# Reads $results (target mode clients round tps foreign-cpu-%) and the
# per-transaction latency logs in $latdir; see REPORT_FROM.

median() { # median of the numbers on stdin, "-" if none
	sort -g | awk '{v[NR] = $1} END {if (NR == 0) {print "-"; exit}
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# med TARGET MODE CLIENTS [QUIET]: median TPS, of the quiet runs only if QUIET
med() {
	awk -v t="$1" -v m="$2" -v c="$3" -v q="${4:-}" \
		'$1 == t && $2 == m && $3 == c && (q == "" || $6 <= q) {print $5}' "$results" | median
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
			p50=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m {print $4}' "$lat" | median)
			p99=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m {print $5}' "$lat" | median)
			p999=$(awk -v t="$t" -v m="$m" '$1 == t && $2 == m {print $6}' "$lat" | median)
			added=- quiet=-
			if [[ $t != direct ]]; then
				added=$(awk -v t="$t" -v m="$m" '$2 == m && $1 == "direct" {d[$3] = $5} $2 == m && $1 == t {x[$3] = $5}
					END {for (r in x) if (r in d) print x[r] - d[r]}' "$lat" | median)
				quiet=$(awk -v t="$t" -v m="$m" -v q="$QUIET" '$2 == m && $1 == "direct" && $7 <= q {d[$3] = $5}
					$2 == m && $1 == t && $7 <= q {x[$3] = $5}
					END {for (r in x) if (r in d) print x[r] - d[r]}' "$lat" | median)
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

# --- tools -----------------------------------------------------------------

if [[ -z ${PGBIN:-} ]]; then
	if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/postgres ]]; then
		PGBIN=$(pg_config --bindir)
	else
		PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
	fi
fi
for b in initdb postgres pgbench psql pg_isready; do
	[[ -x $PGBIN/$b ]] || die "no $b in PGBIN=${PGBIN:-?}: install PostgreSQL server binaries (Debian: apt-get install postgresql)"
done
command -v "$PGBOUNCER" >/dev/null || die "no pgbouncer: apt-get install pgbouncer"
command -v ss >/dev/null || die "no ss (iproute2)"

# as_server runs a server program as RUN_USER when we are root (postgres and
# pgbouncer refuse to run as root). It is a command prefix, not a function, so
# that "${as_server[@]}" prog & gives the server's own pid in $! (setpriv
# execs; a function in the background would leave a bash parent in between).
as_server=()
if [[ $EUID -eq 0 ]]; then
	as_server=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --clear-groups --)
fi

# Children inherit the niceness: postgres, pgbouncer, pgcloak and pgbench
# alike, so no target is favoured.
if [[ $EUID -eq 0 && $NICE != 0 ]]; then
	renice -n "$NICE" -p $$ >/dev/null
fi

# --- clean-up --------------------------------------------------------------

tmp=$(mktemp -d /tmp/pgcloak-bench.XXXXXX)
chmod 755 "$tmp"
pg_pid= bouncer_pid= cloak_pid= bench_pid=

stop() { # stop PID SIGNAL: signal, wait up to 10 s, then SIGKILL
	local pid=$1 sig=$2 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	stop "$bench_pid" TERM # a background job ignores SIGINT
	stop "$cloak_pid" TERM
	stop "$bouncer_pid" TERM
	stop "$pg_pid" INT # fast shutdown
	wait 2>/dev/null || true
	if [[ $KEEP == 1 ]]; then
		log "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- ports -----------------------------------------------------------------

# Ports are picked below the kernel's ephemeral range, so that no outgoing
# connection (of this benchmark or of anything else on the machine) takes one
# between the check and the server's bind.
read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range
port_lo=10000 port_n=$((eph_lo - 10000))
((port_n >= 1000)) || port_lo=$((eph_lo > 1024 ? 1024 : eph_lo)) port_n=$((eph_lo - port_lo)) # unusual range
used_ports=" "
free_port() {
	local p
	while :; do
		p=$(((RANDOM * 32768 + RANDOM) % port_n + port_lo))
		[[ $used_ports == *" $p "* ]] && continue
		if [[ -z $(ss -Htan "( sport = :$p )") ]]; then
			used_ports+="$p "
			echo "$p"
			return
		fi
	done
}
pg_port=$(free_port)
bouncer_port=$(free_port)
cloak_port=$(free_port)

wait_ready() { # wait_ready NAME PORT PID
	local i
	for i in $(seq 300); do
		kill -0 "$3" 2>/dev/null || die "$1 exited; see $tmp/$1.log: $(tail -n5 "$tmp/$1.log" 2>/dev/null)"
		if "$PGBIN/psql" -h 127.0.0.1 -p "$2" -U bench -d bench -XAtqc 'select 1' >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	die "$1 not ready on port $2; see $tmp/$1.log"
}

# --- PostgreSQL ------------------------------------------------------------

log "temp dir $tmp"
mkdir -p "$tmp/pgdata" "$tmp/sock" "$tmp/pgbouncer" "$tmp/lat"
[[ $EUID -eq 0 ]] && chown "$RUN_USER:$(id -gn "$RUN_USER")" "$tmp/pgdata" "$tmp/sock" "$tmp/pgbouncer"

log "initdb ($($PGBIN/postgres --version))"
"${as_server[@]}" "$PGBIN/initdb" -D "$tmp/pgdata" -U bench --auth=trust --no-locale -E UTF8 \
	>"$tmp/initdb.log" 2>&1 || die "initdb failed: $(tail -n5 "$tmp/initdb.log")"
cat >"$tmp/pgdata/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
[[ $EUID -eq 0 ]] && chown "$RUN_USER" "$tmp/pgdata/pg_hba.conf"

"${as_server[@]}" "$PGBIN/postgres" -D "$tmp/pgdata" \
	-c listen_addresses=127.0.0.1 -c port="$pg_port" \
	-c unix_socket_directories="$tmp/sock" \
	-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c max_connections=200 -c shared_buffers=256MB \
	>"$tmp/postgres.log" 2>&1 &
pg_pid=$!

# --- PgBouncer (session mode) ---------------------------------------------

cat >"$tmp/pgbouncer/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $tmp/pgbouncer/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 64
max_db_connections = 0
server_reset_query =
logfile = $tmp/pgbouncer/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
echo '"bench" ""' >"$tmp/pgbouncer/userlist.txt"
[[ $EUID -eq 0 ]] && chown -R "$RUN_USER" "$tmp/pgbouncer"
"${as_server[@]}" "$PGBOUNCER" "$tmp/pgbouncer/pgbouncer.ini" >"$tmp/pgbouncer.log" 2>&1 &
bouncer_pid=$!

# --- pgcloak ---------------------------------------------------------------

if [[ -z ${PGCLOAK_BIN:-} ]]; then
	log "building pgcloak from $repo"
	(cd "$repo" && go build -o "$tmp/pgcloak" ./cmd/pgcloak)
	PGCLOAK_BIN=$tmp/pgcloak
fi
"$PGCLOAK_BIN" serve --listen "127.0.0.1:$cloak_port" --upstream "127.0.0.1:$pg_port" \
	--shutdown-grace 1s --log-level warn >"$tmp/pgcloak.log" 2>&1 &
cloak_pid=$!

# --- data ------------------------------------------------------------------

for i in $(seq 300); do
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
	kill -0 "$pg_pid" 2>/dev/null || die "postgres exited: $(tail -n5 "$tmp/postgres.log")"
	sleep 0.1
done
"$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d postgres -XAtqc 'create database bench' >/dev/null
log "pgbench -i -s $SCALE"
"$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$pg_port" -U bench bench >"$tmp/init.log" 2>&1 ||
	die "pgbench -i failed: $(tail -n5 "$tmp/init.log")"
"$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d bench -XAtqc 'vacuum analyze' >/dev/null

wait_ready postgres "$pg_port" "$pg_pid"
wait_ready pgbouncer "$bouncer_port" "$bouncer_pid"
wait_ready pgcloak "$cloak_port" "$cloak_pid"

port_of() {
	case $1 in
	direct) echo "$pg_port" ;;
	pgbouncer) echo "$bouncer_port" ;;
	pgcloak) echo "$cloak_port" ;;
	esac
}

# CPU accounting, in clock ticks, to tell how much of the machine processes
# outside the benchmark took during a run (other people's builds and tests
# on a shared machine): busy time of the whole machine (steal included)
# minus the time of postgres and its children (live ones too: PgBouncer keeps
# its server connections), pgbouncer, pgcloak and this script's children
# (pgbench).
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
proc_ticks() { # utime + stime + cutime + cstime of each PID
	local pid sum=0 f
	for pid; do
		f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
		set -- $f
		sum=$((sum + ${12} + ${13} + ${14} + ${15}))
	done
	echo "$sum"
}
ours() { proc_ticks "$pg_pid" $(pgrep -P "$pg_pid") "$bouncer_pid" "$cloak_pid" $$; }
hz=$(getconf CLK_TCK)
cores=$(nproc)

# run_pgbench TARGET MODE CLIENTS SECONDS [LOGPREFIX]: sets TPS and FOREIGN
# (% of the machine's CPU taken by other processes during the run). Not run
# in a command substitution, so that the traps know bench_pid.
TPS= FOREIGN=
run_pgbench() {
	local target=$1 mode=$2 c=$3 secs=$4 prefix=${5:-} j=1 out failed
	local busy0 ours0 t0 busy1 ours1 t1
	((c > 1)) && j=2
	out=$tmp/run.out
	local args=(-S -n -M "$mode" -c "$c" -j "$j" -T "$secs" -h 127.0.0.1 -p "$(port_of "$target")" -U bench)
	[[ -n $prefix ]] && args+=(-l --log-prefix="$prefix")
	busy0=$(machine_busy) ours0=$(ours) t0=$(date +%s%N)
	# Run in the background so that a signal reaches the trap at once.
	(cd "$tmp/lat" && exec "$PGBIN/pgbench" "${args[@]}" bench) >"$out" 2>&1 &
	bench_pid=$!
	wait "$bench_pid" || die "pgbench $target -M $mode -c $c failed: $(tail -n5 "$out")"
	bench_pid=
	sleep 0.3 # let the backends exit, so that postgres has reaped their time
	busy1=$(machine_busy) ours1=$(ours) t1=$(date +%s%N)
	FOREIGN=$(awk -v b=$((busy1 - busy0)) -v o=$((ours1 - ours0)) -v ns=$((t1 - t0)) -v hz="$hz" -v n="$cores" \
		'BEGIN {f = 100 * (b - o) / (ns / 1e9 * hz * n); if (f < 0) f = 0; printf "%.1f", f}')
	failed=$(awk '/number of failed transactions/ {print $5}' "$out")
	[[ -z $failed || $failed == 0 ]] || die "pgbench $target -M $mode -c $c: $failed failed transactions"
	TPS=$(awk '/^tps = / {print $3; exit}' "$out")
	[[ -n $TPS ]] || die "no tps in pgbench output: $(cat "$out")"
}

if [[ ${SETUP_ONLY:-0} == 1 ]]; then
	log "ready: direct 127.0.0.1:$pg_port, pgbouncer 127.0.0.1:$bouncer_port, pgcloak 127.0.0.1:$cloak_port (pid $cloak_pid), user bench, database bench"
	echo "PG_PORT=$pg_port BOUNCER_PORT=$bouncer_port CLOAK_PORT=$cloak_port CLOAK_PID=$cloak_pid BOUNCER_PID=$bouncer_pid PG_PID=$pg_pid"
	sleep infinity &
	bench_pid=$!
	wait "$bench_pid" || true
	exit 0
fi

# --- runs ------------------------------------------------------------------

read -r -a modes <<<"$MODES"
read -r -a clients <<<"$CLIENTS"
NICENESS=$(ps -o ni= -p $$ | tr -d ' ')
declare -p SCALE DURATION ROUNDS NICENESS MODES CLIENTS MAX_FOREIGN >"$tmp/meta"
latdir=$tmp/lat
ncells=$((${#modes[@]} * ${#clients[@]}))
total=$((ROUNDS * ncells * ${#TARGETS[@]}))
log "$total runs of ${DURATION}s (${ROUNDS} rounds x ${ncells} cells x ${#TARGETS[@]} targets), about $(((total * (DURATION + 1) + 59) / 60)) min"

if ((WARMUP > 0)); then
	for t in "${TARGETS[@]}"; do
		for m in "${modes[@]}"; do run_pgbench "$t" "$m" 8 "$WARMUP"; done
	done
fi

results=$tmp/results.txt
: >"$results"
n=0
for ((r = 1; r <= ROUNDS; r++)); do
	cell=0
	for m in "${modes[@]}"; do
		for c in "${clients[@]}"; do
			# Rotate the order of the targets from cell to cell and round to
			# round so that none always runs first (or last).
			for ((k = 0; k < ${#TARGETS[@]}; k++)); do
				t=${TARGETS[$(((k + r + cell) % ${#TARGETS[@]}))]}
				prefix=
				((c == 1)) && prefix=$tmp/lat/$t.$m.r$r
				n=$((n + 1))
				for ((try = 0; ; try++)); do
					[[ -n $prefix ]] && rm -f "$prefix".*
					run_pgbench "$t" "$m" "$c" "$DURATION" "$prefix"
					awk -v f="$FOREIGN" -v m="$MAX_FOREIGN" 'BEGIN {exit !(f > m)}' || break
					((try < RETRIES)) || {
						log "[$n/$total] $t -M $m -c $c: other processes took $FOREIGN% of the CPU; keeping it after $RETRIES retries"
						break
					}
					log "[$n/$total] $t -M $m -c $c: other processes took $FOREIGN% of the CPU (tps $TPS); again in 10 s"
					sleep 10
				done
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

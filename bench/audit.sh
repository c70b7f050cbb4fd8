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
RUN_USER=${RUN_USER:-nobody}
KEEP=${KEEP:-0}
RESULTS=${RESULTS:-}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

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
command -v ss >/dev/null || die "no ss (iproute2)"

as_server=()
if [[ $EUID -eq 0 ]]; then
	as_server=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --clear-groups --)
fi

tmp=$(mktemp -d /tmp/pgcloak-audit-bench.XXXXXX)
chmod 755 "$tmp"
pg_pid= bench_pid=
declare -A cloak_pid=()

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
	local rc=$? p
	trap - EXIT INT TERM HUP
	stop "$bench_pid" TERM
	for p in "${cloak_pid[@]}"; do stop "$p" TERM; done
	stop "$pg_pid" INT
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

used_ports=" "
free_port() {
	local p
	while :; do
		p=$(((RANDOM * 32768 + RANDOM) % 25000 + 30000))
		[[ $used_ports == *" $p "* ]] && continue
		if [[ -z $(ss -Htan "( sport = :$p )") ]]; then
			used_ports+="$p "
			echo "$p"
			return
		fi
	done
}
pg_port=$(free_port)
dsn() { echo "host=127.0.0.1 port=$pg_port user=bench dbname=$1 sslmode=disable"; }
sql() { "$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"; }

# --- PostgreSQL and data ------------------------------------------------------

log "temp dir $tmp"
mkdir -p "$tmp/pgdata" "$tmp/sock" "$tmp/audit"
[[ $EUID -eq 0 ]] && chown "$RUN_USER:$(id -gn "$RUN_USER")" "$tmp/pgdata" "$tmp/sock"
"${as_server[@]}" "$PGBIN/initdb" -D "$tmp/pgdata" -U bench --auth=trust --no-locale -E UTF8 \
	>"$tmp/initdb.log" 2>&1 || die "initdb failed: $(tail -n5 "$tmp/initdb.log")"
printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$tmp/pgdata/pg_hba.conf"
[[ $EUID -eq 0 ]] && chown "$RUN_USER" "$tmp/pgdata/pg_hba.conf"
"${as_server[@]}" "$PGBIN/postgres" -D "$tmp/pgdata" \
	-c listen_addresses=127.0.0.1 -c port="$pg_port" -c unix_socket_directories="$tmp/sock" \
	-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c max_connections=200 -c shared_buffers=256MB >"$tmp/postgres.log" 2>&1 &
pg_pid=$!

log "building pgcloak${PGCLOAK_BIN:+ (using $PGCLOAK_BIN)} and crmgen from $repo"
(cd "$repo" && go build -o "$tmp/crmgen" ./examples/crm/crmgen)
if [[ -z ${PGCLOAK_BIN:-} ]]; then
	(cd "$repo" && go build -o "$tmp/pgcloak" ./cmd/pgcloak)
	PGCLOAK_BIN=$tmp/pgcloak
fi
for i in $(seq 300); do
	"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
	kill -0 "$pg_pid" 2>/dev/null || die "postgres exited: $(tail -n5 "$tmp/postgres.log")"
	sleep 0.1
done

if [[ " $WORKLOADS " == *" pass "* ]]; then
	sql postgres "create database bench" >/dev/null
	log "pgbench -i -s $SCALE"
	"$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$pg_port" -U bench bench >"$tmp/init.log" 2>&1 ||
		die "pgbench -i failed: $(tail -n5 "$tmp/init.log")"
	sql bench 'vacuum analyze' >/dev/null
fi
if [[ " $WORKLOADS " == *" crm "* ]]; then
	sql postgres "create database crm" >/dev/null
	log "crmgen --customers $CUSTOMERS"
	"$tmp/crmgen" --database "$(dsn crm)" --customers "$CUSTOMERS" >"$tmp/crmgen.log" 2>&1 ||
		die "crmgen failed: $(tail -n5 "$tmp/crmgen.log")"
	"$PGCLOAK_BIN" setup --database "$(dsn crm)" >"$tmp/setup.log" 2>&1 || die "pgcloak setup failed: $(tail -n5 "$tmp/setup.log")"
	sql crm 'vacuum analyze' >/dev/null
fi

# --- one pgcloak per (workload, access log) --------------------------------------

declare -A cloak_port=()
start_cloak() { # start_cloak WORKLOAD off|on
	local w=$1 a=$2 port args
	port=$(free_port)
	args=(serve --listen "127.0.0.1:$port" --upstream "127.0.0.1:$pg_port" --shutdown-grace 1s --log-level warn)
	[[ $w == crm ]] && args+=(--rules "$repo/examples/crm/rules.yaml" --catalog-dsn "$(dsn crm)")
	[[ $a == on ]] && args+=(--audit-file "$tmp/audit/$w.log")
	"$PGCLOAK_BIN" "${args[@]}" >"$tmp/pgcloak.$w.$a.log" 2>&1 &
	cloak_pid[$w.$a]=$!
	cloak_port[$w.$a]=$port
}
user_of() { [[ $1 == crm ]] && echo alice || echo bench; }
db_of() { [[ $1 == crm ]] && echo crm || echo bench; }
read -r -a workloads <<<"$WORKLOADS"
for w in "${workloads[@]}"; do
	for a in off on; do start_cloak "$w" "$a"; done
done
for k in "${!cloak_port[@]}"; do
	w=${k%.*}
	for i in $(seq 300); do
		"$PGBIN/psql" -h 127.0.0.1 -p "${cloak_port[$k]}" -U "$(user_of "$w")" -d "$(db_of "$w")" -XAtqc 'select 1' >/dev/null 2>&1 && break
		kill -0 "${cloak_pid[$k]}" 2>/dev/null || die "pgcloak $k exited: $(tail -n5 "$tmp/pgcloak.$k.log")"
		sleep 0.1
	done
done

# --- runs --------------------------------------------------------------------------

machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
proc_ticks() {
	local pid sum=0 f
	for pid; do
		f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
		set -- $f
		sum=$((sum + ${12} + ${13} + ${14} + ${15}))
	done
	echo "$sum"
}
ours() { proc_ticks "$pg_pid" "${cloak_pid[@]}" $$; }
hz=$(getconf CLK_TCK)
cores=$(nproc)

# run_pgbench sets TPS, FOREIGN (% of the machine's CPU other processes
# took) and CLOAK_US (pgcloak's CPU time per transaction, in µs: unlike
# TPS, it hardly depends on what else runs on the machine).
TPS= FOREIGN= CLOAK_US=
run_pgbench() { # run_pgbench WORKLOAD off|on MODE CLIENTS SECONDS
	local w=$1 a=$2 mode=$3 c=$4 secs=$5 j=1 out busy0 ours0 t0 busy1 ours1 t1 failed cloak0 cloak1 txs
	((c > 1)) && j=2
	out=$tmp/run.out
	local args=(-n -M "$mode" -c "$c" -j "$j" -T "$secs" -h 127.0.0.1 -p "${cloak_port[$w.$a]}" -U "$(user_of "$w")")
	if [[ $w == crm ]]; then
		args+=(-f "$repo/bench/crm_select.sql" -D "customers=$CUSTOMERS")
	else
		args+=(-S)
	fi
	busy0=$(machine_busy) ours0=$(ours) t0=$(date +%s%N) cloak0=$(proc_ticks "${cloak_pid[$w.$a]}")
	"$PGBIN/pgbench" "${args[@]}" "$(db_of "$w")" >"$out" 2>&1 &
	bench_pid=$!
	wait "$bench_pid" || die "pgbench $w/$a -M $mode -c $c failed: $(tail -n5 "$out")"
	bench_pid=
	sleep 0.3
	busy1=$(machine_busy) ours1=$(ours) t1=$(date +%s%N) cloak1=$(proc_ticks "${cloak_pid[$w.$a]}")
	FOREIGN=$(awk -v b=$((busy1 - busy0)) -v o=$((ours1 - ours0)) -v ns=$((t1 - t0)) -v hz="$hz" -v n="$cores" \
		'BEGIN {f = 100 * (b - o) / (ns / 1e9 * hz * n); if (f < 0) f = 0; printf "%.1f", f}')
	failed=$(awk '/number of failed transactions/ {print $5}' "$out")
	[[ -z $failed || $failed == 0 ]] || die "pgbench $w/$a -M $mode -c $c: $failed failed transactions"
	TPS=$(awk '/^tps = / {print $3; exit}' "$out")
	[[ -n $TPS ]] || die "no tps in pgbench output: $(cat "$out")"
	txs=$(awk '/number of transactions actually processed/ {split($0, f, ": "); split(f[2], g, "/"); print g[1]; exit}' "$out")
	CLOAK_US=$(awk -v t=$((cloak1 - cloak0)) -v hz="$hz" -v n="$txs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
}

read -r -a modes <<<"$MODES"
read -r -a clients <<<"$CLIENTS"
total=$((ROUNDS * ${#workloads[@]} * ${#modes[@]} * ${#clients[@]} * 2))
log "$total runs of ${DURATION}s, about $(((total * (DURATION + 1) + 59) / 60)) min"
if ((WARMUP > 0)); then
	for w in "${workloads[@]}"; do
		for m in "${modes[@]}"; do
			for a in off on; do run_pgbench "$w" "$a" "$m" 8 "$WARMUP"; done
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
					run_pgbench "$w" "$a" "$m" "$c" "$DURATION"
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

median() {
	sort -g | awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit}
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
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

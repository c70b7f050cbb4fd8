#!/usr/bin/env bash
# CRM workload benchmark: what a north sales rep's CRM screen runs (a
# customer by id, then the customer's last orders: bench/crm_select.sql),
# with pgbench, against four targets on this machine, A/B interleaved:
#
#   direct       PostgreSQL directly, as the superuser: no policy at all
#   native_rls   PostgreSQL directly, as alice, with the same sales_rep policy
#                written natively: row-level security plus security_barrier
#                masking views (bench/rls.sql), in a second database loaded
#                with the same data
#   cloak_pass   through pgcloak with the CRM rules, as dana (dba,
#                unrestricted: pass-through)
#   cloak_rules  through pgcloak with the CRM rules, as alice (sales_rep,
#                north): every statement rewritten
#
# In the simple protocol pgbench sends the customer id as a literal, so
# most statement texts are new to pgcloak's result cache (a cold rewrite);
# with prepared statements the text has $1 and is rewritten once per
# session.
#
# Usage: bench/crm.sh
#
# Environment (all optional):
#   DURATION=10        seconds per pgbench run
#   ROUNDS=3           rounds; each round runs every cell once per target
#   WARMUP=3           seconds of warm-up per target and mode before the rounds
#   CLIENTS="1 8"      client counts
#   MODES="simple prepared"   pgbench query modes
#   CUSTOMERS=25000    customers in the sample CRM (crmgen)
#   PGBIN=...          PostgreSQL binaries (default: pg_config --bindir, then
#                      /usr/lib/postgresql/*/bin)
#   PGCLOAK_BIN=...    use this pgcloak binary instead of building the checkout
#   RUN_USER=nobody    unprivileged user for postgres when root
#   KEEP=1             keep the temp dir (logs)
#   MAX_FOREIGN=10     a run during which processes outside the benchmark
#                      took more than this % of the machine's CPU is run
#                      again (after a pause), up to RETRIES=3 times
#   RESULTS=FILE       also copy the raw results to FILE, one line per run:
#                      target mode clients round tps foreign-cpu-% cpu-µs-per-txn
#
# Smoke run: DURATION=2 ROUNDS=1 WARMUP=1 CLIENTS=8 bench/crm.sh
#
# Caveat: pgbench, postgres and pgcloak share this machine's cores, so
# every figure includes the client's and the proxy's CPU competing with the
# server's.
set -euo pipefail

# One compound command: bash parses the whole script before running it, so
# editing the file during a run does not break that run.
{

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-3}
CLIENTS=${CLIENTS:-"1 8"}
MODES=${MODES:-"simple prepared"}
CUSTOMERS=${CUSTOMERS:-25000}
RUN_USER=${RUN_USER:-nobody}
KEEP=${KEEP:-0}
MAX_FOREIGN=${MAX_FOREIGN:-10}
RETRIES=${RETRIES:-3}
RESULTS=${RESULTS:-}
TARGETS=(direct native_rls cloak_pass cloak_rules)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

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
command -v ss >/dev/null || die "no ss (iproute2)"
command -v go >/dev/null || die "no go: needed to build pgcloak and crmgen"

as_server=()
if [[ $EUID -eq 0 ]]; then
	as_server=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --clear-groups --)
fi

# --- clean-up --------------------------------------------------------------

tmp=$(mktemp -d /tmp/pgcloak-crm-bench.XXXXXX)
chmod 755 "$tmp"
pg_pid= cloak_pid= bench_pid=

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
	stop "$bench_pid" TERM
	stop "$cloak_pid" TERM
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
cloak_port=$(free_port)

dsn() { echo "host=127.0.0.1 port=$pg_port user=bench dbname=$1 sslmode=disable"; }
sql() { # sql DB SQL: run as the superuser, directly
	"$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

# --- PostgreSQL ------------------------------------------------------------

log "temp dir $tmp"
mkdir -p "$tmp/pgdata" "$tmp/sock"
[[ $EUID -eq 0 ]] && chown "$RUN_USER:$(id -gn "$RUN_USER")" "$tmp/pgdata" "$tmp/sock"

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

# --- binaries (while postgres starts) ---------------------------------------

if [[ -n ${PGCLOAK_BIN:-} ]]; then
	log "building crmgen from $repo (pgcloak: $PGCLOAK_BIN)"
else
	log "building crmgen and pgcloak from $repo"
fi
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

# --- data ------------------------------------------------------------------

# crm: the CRM as pgcloak protects it. crm_native: the same data (same seed)
# with the policy written natively (bench/rls.sql).
for db in crm crm_native; do
	sql postgres "create database $db" >/dev/null
	log "crmgen --customers $CUSTOMERS into $db"
	"$tmp/crmgen" --database "$(dsn $db)" --customers "$CUSTOMERS" >"$tmp/crmgen.$db.log" 2>&1 ||
		die "crmgen failed: $(tail -n5 "$tmp/crmgen.$db.log")"
done
log "pgcloak setup"
if "$PGCLOAK_BIN" setup --database "$(dsn crm)" >"$tmp/setup.log" 2>&1; then
	:
else
	die "pgcloak setup failed: $(tail -n5 "$tmp/setup.log")"
fi
log "native policy (bench/rls.sql) into crm_native"
"$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d crm_native -XAtq -v ON_ERROR_STOP=1 \
	-f "$repo/bench/rls.sql" >"$tmp/rls.log" 2>&1 || die "rls.sql failed: $(tail -n5 "$tmp/rls.log")"
for db in crm crm_native; do sql "$db" 'vacuum analyze' >/dev/null; done

# --- pgcloak ---------------------------------------------------------------

"$PGCLOAK_BIN" serve --listen "127.0.0.1:$cloak_port" --upstream "127.0.0.1:$pg_port" \
	--rules "$repo/examples/crm/rules.yaml" --catalog-dsn "$(dsn crm)" \
	--shutdown-grace 1s --log-level warn >"$tmp/pgcloak.log" 2>&1 &
cloak_pid=$!

port_of() {
	case $1 in
	direct | native_rls) echo "$pg_port" ;;
	cloak_pass | cloak_rules) echo "$cloak_port" ;;
	esac
}
user_of() {
	case $1 in
	direct) echo bench ;;
	native_rls | cloak_rules) echo alice ;;
	cloak_pass) echo dana ;;
	esac
}
db_of() {
	case $1 in
	native_rls) echo crm_native ;;
	*) echo crm ;;
	esac
}
psql_as() { # psql_as TARGET SQL
	"$PGBIN/psql" -h 127.0.0.1 -p "$(port_of "$1")" -U "$(user_of "$1")" -d "$(db_of "$1")" -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

for i in $(seq 300); do
	psql_as cloak_rules 'select 1' >/dev/null 2>&1 && break
	kill -0 "$cloak_pid" 2>/dev/null || die "pgcloak exited: $(tail -n5 "$tmp/pgcloak.log")"
	sleep 0.1
done
psql_as cloak_rules 'select 1' >/dev/null || die "pgcloak not ready; see $tmp/pgcloak.log"

# --- the two policies give the same answers ----------------------------------

# The native policy must be the same policy, or the comparison means
# nothing: a few queries as alice through pgcloak and natively must agree,
# and differ from the raw data.
checks=(
	"select count(*), count(distinct region), min(region), sum(loyalty_points), max(annual_income), min(birth_date) from customers"
	"select * from customers where customer_id in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12) order by customer_id"
	"select count(*), sum(total_amount), min(shipping_postal_code), max(shipping_city) from orders"
	"select count(*), sum(quantity) from order_lines"
	"select ticket_id, body from support_tickets order by ticket_id limit 5"
	"select count(*) from contacts"
	"select count(*) from accounts"
)
for q in "${checks[@]}"; do
	a=$(psql_as cloak_rules "$q" 2>&1) || die "as alice through pgcloak: $q: $a"
	b=$(psql_as native_rls "$q" 2>&1) || die "as alice natively: $q: $b"
	[[ $a == "$b" ]] || die "pgcloak and the native policy disagree on: $q
  pgcloak: $a
  native:  $b"
done
[[ $(psql_as cloak_rules "${checks[0]}") != "$(psql_as direct "${checks[0]}")" ]] || die "alice sees the raw data through pgcloak"
log "pgcloak and the native policy agree on ${#checks[@]} queries as alice"

# --- runs ------------------------------------------------------------------

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
ours() { proc_ticks "$pg_pid" "$cloak_pid" $$; }
hz=$(getconf CLK_TCK)
cores=$(nproc)

# run_pgbench TARGET MODE CLIENTS SECONDS: sets TPS, FOREIGN and CPUTX, the
# CPU time that postgres, pgcloak and pgbench together spent per
# transaction (µs): unlike TPS, it hardly depends on what else the machine
# runs, so it is the figure to compare on a shared machine.
TPS= FOREIGN= CPUTX=
run_pgbench() {
	local target=$1 mode=$2 c=$3 secs=$4 j=1 out failed
	local busy0 ours0 t0 busy1 ours1 t1
	((c > 1)) && j=2
	out=$tmp/run.out
	local args=(-n -M "$mode" -c "$c" -j "$j" -T "$secs" -f "$repo/bench/crm_select.sql" -D "customers=$CUSTOMERS"
		-h 127.0.0.1 -p "$(port_of "$target")" -U "$(user_of "$target")")
	busy0=$(machine_busy) ours0=$(ours) t0=$(date +%s%N)
	"$PGBIN/pgbench" "${args[@]}" "$(db_of "$target")" >"$out" 2>&1 &
	bench_pid=$!
	wait "$bench_pid" || die "pgbench $target -M $mode -c $c failed: $(tail -n5 "$out")"
	bench_pid=
	sleep 0.3
	busy1=$(machine_busy) ours1=$(ours) t1=$(date +%s%N)
	FOREIGN=$(awk -v b=$((busy1 - busy0)) -v o=$((ours1 - ours0)) -v ns=$((t1 - t0)) -v hz="$hz" -v n="$cores" \
		'BEGIN {f = 100 * (b - o) / (ns / 1e9 * hz * n); if (f < 0) f = 0; printf "%.1f", f}')
	failed=$(awk '/number of failed transactions/ {print $5}' "$out")
	[[ -z $failed || $failed == 0 ]] || die "pgbench $target -M $mode -c $c: $failed failed transactions"
	TPS=$(awk '/^tps = / {print $3; exit}' "$out")
	[[ -n $TPS ]] || die "no tps in pgbench output: $(cat "$out")"
	local txns
	txns=$(awk '/^number of transactions actually processed:/ {print $6; exit}' "$out")
	CPUTX=$(awk -v o=$((ours1 - ours0)) -v hz="$hz" -v n="$txns" 'BEGIN {printf "%.0f", o / hz * 1e6 / n}')
}

read -r -a modes <<<"$MODES"
read -r -a clients <<<"$CLIENTS"
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
			for ((k = 0; k < ${#TARGETS[@]}; k++)); do
				t=${TARGETS[$(((k + r + cell) % ${#TARGETS[@]}))]}
				n=$((n + 1))
				for ((try = 0; ; try++)); do
					run_pgbench "$t" "$m" "$c" "$DURATION"
					awk -v f="$FOREIGN" -v m="$MAX_FOREIGN" 'BEGIN {exit !(f > m)}' || break
					((try < RETRIES)) || {
						log "[$n/$total] $t -M $m -c $c: other processes took $FOREIGN% of the CPU; keeping it after $RETRIES retries"
						break
					}
					log "[$n/$total] $t -M $m -c $c: other processes took $FOREIGN% of the CPU (tps $TPS); again in 10 s"
					sleep 10
				done
				printf '%s %s %s %s %s %s %s\n' "$t" "$m" "$c" "$r" "$TPS" "$FOREIGN" "$CPUTX" >>"$results"
				log "[$n/$total] round $r  $t  -M $m  -c $c  tps $TPS  cpu/txn ${CPUTX}µs  (others: $FOREIGN% CPU)"
			done
			cell=$((cell + 1))
		done
	done
done
[[ -n $RESULTS ]] && cp "$results" "$RESULTS"

# --- report ----------------------------------------------------------------

median() {
	sort -g | awk '{v[NR] = $1} END {if (NR == 0) {print "nan"; exit}
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
med() { awk -v t="$1" -v m="$2" -v c="$3" -v f="${4:-5}" '$1 == t && $2 == m && $3 == c {print $f}' "$results" | median; }

echo
echo "bench/crm_select.sql as a north sales rep, $CUSTOMERS customers, median TPS of $ROUNDS run(s) x ${DURATION}s; $(nproc) cores shared by client, proxy and server"
echo
printf '| %-8s | %7s | %9s | %10s | %10s | %11s | %10s | %12s | %13s | %12s |\n' \
	mode clients direct native_rls cloak_pass cloak_rules rules/pass rules/native native/direct pass/direct
echo '|----------|--------:|----------:|-----------:|-----------:|------------:|-----------:|-------------:|--------------:|-------------:|'
for m in "${modes[@]}"; do
	for c in "${clients[@]}"; do
		d=$(med direct "$m" "$c")
		nr=$(med native_rls "$m" "$c")
		p=$(med cloak_pass "$m" "$c")
		cr=$(med cloak_rules "$m" "$c")
		awk -v m="$m" -v c="$c" -v d="$d" -v nr="$nr" -v p="$p" -v cr="$cr" 'BEGIN {
			printf "| %-8s | %7s | %9.0f | %10.0f | %10.0f | %11.0f | %10.3f | %12.3f | %13.3f | %12.3f |\n",
				m, c, d, nr, p, cr, cr / p, cr / nr, nr / d, p / d}'
	done
done

echo
echo "CPU time per transaction (µs; postgres + pgcloak + pgbench, median of $ROUNDS run(s)): lower is better"
echo
printf '| %-8s | %7s | %9s | %10s | %10s | %11s | %10s | %12s | %13s | %12s |\n' \
	mode clients direct native_rls cloak_pass cloak_rules rules/pass rules/native native/direct pass/direct
echo '|----------|--------:|----------:|-----------:|-----------:|------------:|-----------:|-------------:|--------------:|-------------:|'
for m in "${modes[@]}"; do
	for c in "${clients[@]}"; do
		d=$(med direct "$m" "$c" 7)
		nr=$(med native_rls "$m" "$c" 7)
		p=$(med cloak_pass "$m" "$c" 7)
		cr=$(med cloak_rules "$m" "$c" 7)
		awk -v m="$m" -v c="$c" -v d="$d" -v nr="$nr" -v p="$p" -v cr="$cr" 'BEGIN {
			printf "| %-8s | %7s | %9.0f | %10.0f | %10.0f | %11.0f | %10.3f | %12.3f | %13.3f | %12.3f |\n",
				m, c, d, nr, p, cr, cr / p, cr / nr, nr / d, p / d}'
	done
done

awk -v lim="$MAX_FOREIGN" '{if ($6 > max) max = $6; if ($6 > lim) over++; sum += $6}
	END {printf "\nCPU taken by processes outside the benchmark during a run: mean %.1f%%, max %.1f%% of the machine; %d run(s) over %s%%\n",
		sum / NR, max, over, lim}' "$results"

exit
}

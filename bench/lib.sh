# shellcheck shell=bash
# bench/lib.sh: what every bench script shares, sourced by them (not run).
#
#   bench_init NAME        temp dir /tmp/pgcloak-NAME.XXXXXX ($tmp), clean-up
#                          on exit and on signals, PGBIN and the programs
#   free_port              a free loopback port below the ephemeral range
#   start_postgres         initdb (as RUN_USER when root) and postgres with
#                          trust on 127.0.0.1: $pg_port, $pg_pid
#   start_pgbouncer NAME MODE USER...
#                          PgBouncer (trust, pool_mode MODE) in front of
#                          $pg_port for these users: $bouncer_port[NAME]
#   build_pgcloak, build_crmgen
#                          go build from the checkout ($PGCLOAK_BIN wins)
#   start_pgcloak NAME ARGS...
#                          `pgcloak serve --listen ... ARGS`: $cloak_port[NAME]
#   wait_sql NAME PORT USER DB
#                          until `select 1` answers through that port
#   load_crm DB            crmgen --customers $CUSTOMERS, pgcloak setup, analyze
#   run_client OUT CMD...  CMD (any client program), output into OUT,
#                          measured: FOREIGN, OURS, WATCHED as below
#   run_pgbench ARGS...    pgbench ARGS, measured: TPS, TXNS, FOREIGN (% of the
#                          machine's CPU taken by processes outside the
#                          benchmark), OURS (CPU ticks of the benchmark's own
#                          processes) and WATCHED (ticks of $WATCH_PID)
#   measure LABEL CMD...   CMD (run_pgbench ...), again after 10 s while others took
#                          more than MAX_FOREIGN %, at most RETRIES times
#   rotated R CELL T...    the targets in the order of round R and cell CELL:
#                          the order rotates so that none always runs first
#   median [EMPTY]         median of the numbers on stdin (EMPTY, nan, if none)
#
# Every process started here runs until the script exits; the clean-up
# stops them in reverse order (pgbench first, postgres last).
#
# Common environment: PGBIN, PGBOUNCER (pgbouncer), PGCLOAK_BIN, RUN_USER
# (nobody), KEEP=1 (keep the temp dir), MAX_FOREIGN, RETRIES, NICE (when
# root, the niceness of everything the benchmark runs; 0 = off),
# MAX_CONNECTIONS (postgres, 200), CUSTOMERS (25000).

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBOUNCER=${PGBOUNCER:-pgbouncer}
RUN_USER=${RUN_USER:-nobody}
KEEP=${KEEP:-0}
NICE=${NICE:-0}
MAX_FOREIGN=${MAX_FOREIGN:-25}
RETRIES=${RETRIES:-1}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-200}
CUSTOMERS=${CUSTOMERS:-25000}

tmp= pg_pid= pg_port= bench_pid=
bench_pids=()           # started processes, in start order
declare -A bouncer_port=() bouncer_pid=() cloak_port=() cloak_pid=()

# --- tools and temp dir -------------------------------------------------------

bench_init() { # bench_init NAME
	if [[ -z ${PGBIN:-} ]]; then
		if command -v pg_config >/dev/null && [[ -x $(pg_config --bindir)/postgres ]]; then
			PGBIN=$(pg_config --bindir)
		else
			PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
		fi
	fi
	local b
	for b in initdb postgres pgbench psql pg_isready; do
		[[ -x $PGBIN/$b ]] || die "no $b in PGBIN=${PGBIN:-?}: install PostgreSQL server binaries (Debian: apt-get install postgresql)"
	done
	command -v ss >/dev/null || die "no ss (iproute2)"

	# as_server runs a server program as RUN_USER when we are root (postgres
	# and pgbouncer refuse to run as root). A command prefix, not a
	# function, so that "${as_server[@]}" prog & gives the server's own pid
	# in $! (setpriv execs).
	as_server=()
	if [[ $EUID -eq 0 ]]; then
		as_server=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --clear-groups --)
	fi
	# Children inherit the niceness: every target alike.
	if [[ $EUID -eq 0 && $NICE != 0 ]]; then
		renice -n "$NICE" -p $$ >/dev/null
	fi
	NICENESS=$(ps -o ni= -p $$ | tr -d ' ')

	tmp=$(mktemp -d "/tmp/pgcloak-$1.XXXXXX")
	chmod 755 "$tmp"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	log "temp dir $tmp"

	hz=$(getconf CLK_TCK)
	cores=$(nproc)
}

stop_pid() { # stop_pid PID SIGNAL: signal, wait up to 10 s, then SIGKILL
	local pid=$1 sig=$2 i
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
	kill "-$sig" "$pid" 2>/dev/null || true
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

bench_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM HUP
	stop_pid "$bench_pid" TERM # a background job ignores SIGINT
	for ((i = ${#bench_pids[@]} - 1; i >= 0; i--)); do
		stop_pid "${bench_pids[$i]}" TERM
	done
	stop_pid "$pg_pid" INT # fast shutdown
	wait 2>/dev/null || true
	if [[ -n $tmp ]]; then
		if [[ $KEEP == 1 ]]; then
			log "kept $tmp"
		else
			rm -rf "$tmp"
		fi
	fi
	exit "$rc"
}

# --- ports ----------------------------------------------------------------------

# Ports are picked below the kernel's ephemeral range, so that no outgoing
# connection (of this benchmark or of anything else on the machine) takes
# one between the check and the server's bind.
read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range
port_lo=10000 port_n=$((eph_lo - 10000))
((port_n >= 1000)) || port_lo=$((eph_lo > 1024 ? 1024 : eph_lo)) port_n=$((eph_lo - port_lo)) # unusual range
used_ports=" "
free_port() { # prints a port; call it as p=$(free_port) and then claim_port "$p"
	local p
	while :; do
		p=$(((RANDOM * 32768 + RANDOM) % port_n + port_lo))
		[[ $used_ports == *" $p "* ]] && continue
		if [[ -z $(ss -Htan "( sport = :$p )") ]]; then
			echo "$p"
			return
		fi
	done
}
claim_port() { used_ports+="$1 "; }
new_port() { # new_port VAR: a free port, claimed, into VAR
	local p
	p=$(free_port)
	claim_port "$p"
	printf -v "$1" '%s' "$p"
}

# --- PostgreSQL -------------------------------------------------------------------

sql() { # sql DB SQL: run as the superuser bench, directly
	"$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"
}
dsn() { echo "host=127.0.0.1 port=$pg_port user=bench dbname=$1 sslmode=disable"; }

# start_postgres: a throwaway server, superuser bench, trust on 127.0.0.1,
# no durability (fsync off), MAX_CONNECTIONS connections; returns once it
# accepts connections. Extra arguments are more postgres -c settings.
start_postgres() {
	new_port pg_port
	mkdir -p "$tmp/pgdata" "$tmp/sock"
	[[ $EUID -eq 0 ]] && chown "$RUN_USER:$(id -gn "$RUN_USER")" "$tmp/pgdata" "$tmp/sock"
	log "initdb ($("$PGBIN/postgres" --version))"
	"${as_server[@]}" "$PGBIN/initdb" -D "$tmp/pgdata" -U bench --auth=trust --no-locale -E UTF8 \
		>"$tmp/initdb.log" 2>&1 || die "initdb failed: $(tail -n5 "$tmp/initdb.log")"
	printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$tmp/pgdata/pg_hba.conf"
	[[ $EUID -eq 0 ]] && chown "$RUN_USER" "$tmp/pgdata/pg_hba.conf"
	local extra=() s
	for s; do extra+=(-c "$s"); done
	"${as_server[@]}" "$PGBIN/postgres" -D "$tmp/pgdata" \
		-c listen_addresses=127.0.0.1 -c port="$pg_port" \
		-c unix_socket_directories="$tmp/sock" \
		-c fsync=off -c synchronous_commit=off -c full_page_writes=off \
		-c max_connections="$MAX_CONNECTIONS" -c shared_buffers=256MB "${extra[@]}" \
		>"$tmp/postgres.log" 2>&1 &
	pg_pid=$!
	local i
	for i in $(seq 300); do
		"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && return 0
		kill -0 "$pg_pid" 2>/dev/null || die "postgres exited: $(tail -n5 "$tmp/postgres.log")"
		sleep 0.1
	done
	die "postgres not ready; see $tmp/postgres.log"
}

# --- PgBouncer ----------------------------------------------------------------------

# start_pgbouncer NAME MODE USER...: PgBouncer with pool_mode MODE in front
# of the PostgreSQL above, trust auth, for these users (pool of 64 per
# user and database, so 32 clients never queue). BOUNCER_RESET_QUERY is its
# server_reset_query (default none, as in the pass-through benchmark; a
# deployment keeps PgBouncer's DISCARD ALL).
start_pgbouncer() {
	local name=$1 mode=$2 port u dir=$tmp/pgbouncer.$1
	shift 2
	command -v "$PGBOUNCER" >/dev/null || die "no pgbouncer: apt-get install pgbouncer"
	new_port port
	mkdir -p "$dir"
	cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $mode
max_client_conn = 2000
default_pool_size = 64
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
server_reset_query = ${BOUNCER_RESET_QUERY:-}
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
EOF
	: >"$dir/userlist.txt"
	for u; do echo "\"$u\" \"\"" >>"$dir/userlist.txt"; done
	[[ $EUID -eq 0 ]] && chown -R "$RUN_USER" "$dir"
	"${as_server[@]}" "$PGBOUNCER" "$dir/pgbouncer.ini" >"$dir/stderr.log" 2>&1 &
	bouncer_pid[$name]=$!
	bouncer_port[$name]=$port
	bench_pids+=("$!")
}

# --- pgcloak ------------------------------------------------------------------------

build_pgcloak() {
	[[ -n ${PGCLOAK_BIN:-} ]] && return 0
	command -v go >/dev/null || die "no go: needed to build pgcloak"
	log "building pgcloak from $repo"
	(cd "$repo" && go build -o "$tmp/pgcloak" ./cmd/pgcloak)
	PGCLOAK_BIN=$tmp/pgcloak
}
build_crmgen() {
	command -v go >/dev/null || die "no go: needed to build crmgen"
	log "building crmgen from $repo"
	(cd "$repo" && go build -o "$tmp/crmgen" ./examples/crm/crmgen)
}

# start_pgcloak NAME ARGS...: `pgcloak serve` on a new port with ARGS
# (--upstream and the rest), its log in $tmp/pgcloak.NAME.log.
start_pgcloak() {
	local name=$1 port
	shift
	new_port port
	"$PGCLOAK_BIN" serve --listen "127.0.0.1:$port" --shutdown-grace 1s --log-level warn "$@" \
		>"$tmp/pgcloak.$name.log" 2>&1 &
	cloak_pid[$name]=$!
	cloak_port[$name]=$port
	bench_pids+=("$!")
}

# wait_sql NAME PORT USER DB [PID]: until `select 1` answers.
wait_sql() {
	local i
	for i in $(seq 300); do
		"$PGBIN/psql" -h 127.0.0.1 -p "$2" -U "$3" -d "$4" -XAtqc 'select 1' >/dev/null 2>&1 && return 0
		[[ -z ${5:-} ]] || kill -0 "$5" 2>/dev/null || die "$1 exited: $(tail -n5 "$tmp"/*"$1"*.log 2>/dev/null)"
		sleep 0.1
	done
	die "$1 not ready on port $2 ($("$PGBIN/psql" -h 127.0.0.1 -p "$2" -U "$3" -d "$4" -XAtqc 'select 1' 2>&1))"
}

# load_crm DB: the sample CRM (crmgen, $CUSTOMERS customers) into a new
# database DB, then pgcloak setup unless NOSETUP is given, then analyze.
load_crm() {
	sql postgres "create database $1" >/dev/null
	log "crmgen --customers $CUSTOMERS into $1"
	"$tmp/crmgen" --database "$(dsn "$1")" --customers "$CUSTOMERS" >"$tmp/crmgen.$1.log" 2>&1 ||
		die "crmgen failed: $(tail -n5 "$tmp/crmgen.$1.log")"
	if [[ ${2:-} != NOSETUP ]]; then
		"$PGCLOAK_BIN" setup --database "$(dsn "$1")" >"$tmp/setup.$1.log" 2>&1 ||
			die "pgcloak setup failed: $(tail -n5 "$tmp/setup.$1.log")"
	fi
	sql "$1" 'vacuum analyze' >/dev/null
}

# load_pgbench DB SCALE: pgbench -i into a new database DB.
load_pgbench() {
	sql postgres "create database $1" >/dev/null
	log "pgbench -i -s $2 into $1"
	"$PGBIN/pgbench" -i -q -s "$2" -h 127.0.0.1 -p "$pg_port" -U bench "$1" >"$tmp/init.$1.log" 2>&1 ||
		die "pgbench -i failed: $(tail -n5 "$tmp/init.$1.log")"
	sql "$1" 'vacuum analyze' >/dev/null
}

# --- measuring ----------------------------------------------------------------------

# CPU accounting, in clock ticks, to tell how much of the machine processes
# outside the benchmark took during a run (other people's builds and tests
# on a shared machine): busy time of the whole machine (steal included)
# minus the time of postgres and its children (live ones too: PgBouncer
# keeps its server connections), the processes started here and this
# script's children (pgbench).
machine_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
proc_ticks() { # utime + stime + cutime + cstime of each PID
	local pid sum=0 f
	for pid; do
		f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
		# shellcheck disable=SC2086
		set -- $f
		sum=$((sum + ${12} + ${13} + ${14} + ${15}))
	done
	echo "$sum"
}
ours() {
	# shellcheck disable=SC2046
	proc_ticks "$pg_pid" $(pgrep -P "$pg_pid") "${bench_pids[@]}" $$
}

# run_client OUT CMD...: CMD, its output (stdout and stderr) into OUT,
# measured like run_pgbench: sets FOREIGN, OURS and WATCHED. Returns CMD's
# status. Not to be run in a command substitution (the traps need
# bench_pid).
run_client() {
	local out=$1 busy0 ours0 t0 busy1 ours1 t1 w0=0 w1=0 rc=0
	shift
	busy0=$(machine_busy) ours0=$(ours) t0=$(date +%s%N)
	[[ -n ${WATCH_PID:-} ]] && w0=$(proc_ticks "$WATCH_PID")
	# In the background, so that a signal reaches the trap at once.
	"$@" >"$out" 2>&1 &
	bench_pid=$!
	wait "$bench_pid" || rc=$?
	bench_pid=
	sleep 0.3 # let the backends exit, so that postgres has reaped their time
	busy1=$(machine_busy) ours1=$(ours) t1=$(date +%s%N)
	[[ -n ${WATCH_PID:-} ]] && w1=$(proc_ticks "$WATCH_PID")
	FOREIGN=$(awk -v b=$((busy1 - busy0)) -v o=$((ours1 - ours0)) -v ns=$((t1 - t0)) -v hz="$hz" -v n="$cores" \
		'BEGIN {f = 100 * (b - o) / (ns / 1e9 * hz * n); if (f < 0) f = 0; printf "%.1f", f}')
	OURS=$((ours1 - ours0)) WATCHED=$((w1 - w0))
	return "$rc"
}

# run_pgbench ARGS...: pgbench ARGS (in $LATDIR when set, for -l), which
# must not fail a transaction. Sets TPS, TXNS, FOREIGN, OURS and WATCHED
# (ticks of WATCH_PID, when set). Not to be run in a command substitution,
# so that the traps know bench_pid.
TPS= TXNS= FOREIGN= OURS= WATCHED=
run_pgbench() {
	local out=$tmp/run.out failed
	run_client "$out" sh -c 'cd "$1" && shift && exec "$@"' sh "${LATDIR:-$tmp}" "$PGBIN/pgbench" "$@" ||
		die "pgbench $* failed: $(tail -n5 "$out")"
	failed=$(awk '/number of failed transactions/ {print $5}' "$out")
	[[ -z $failed || $failed == 0 ]] || die "pgbench $*: $failed failed transactions"
	TPS=$(awk '/^tps = / {print $3; exit}' "$out")
	[[ -n $TPS ]] || die "no tps in pgbench output: $(cat "$out")"
	TXNS=$(awk '/^number of transactions actually processed:/ {split($0, f, ": "); split(f[2], g, "/"); print g[1]; exit}' "$out")
}

# measure LABEL COMMAND...: run COMMAND (run_pgbench or a function that
# calls it), again after a pause while processes outside the benchmark took
# more than MAX_FOREIGN % of the CPU, at most RETRIES times (the last try
# is kept).
measure() {
	local label=$1 try
	shift
	for ((try = 0; ; try++)); do
		"$@"
		awk -v f="$FOREIGN" -v m="$MAX_FOREIGN" 'BEGIN {exit !(f > m)}' || return 0
		((try < RETRIES)) || {
			log "$label: other processes took $FOREIGN% of the CPU; keeping it after $RETRIES retries"
			return 0
		}
		log "$label: other processes took $FOREIGN% of the CPU${TPS:+ (tps $TPS)}; again in 10 s"
		sleep 10
	done
}

# rotated R CELL T...: sets ORDER to the targets T rotated by R + CELL, so
# that from cell to cell and round to round none always runs first (or last).
ORDER=()
rotated() {
	local r=$1 cell=$2 k
	shift 2
	local t=("$@")
	ORDER=()
	for ((k = 0; k < ${#t[@]}; k++)); do
		ORDER+=("${t[$(((k + r + cell) % ${#t[@]}))]}")
	done
}

median() { # median [EMPTY]: of the numbers on stdin; EMPTY (nan) if none
	sort -g | awk -v e="${1:-nan}" '{v[NR] = $1} END {if (NR == 0) {print e; exit}
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# foreign_summary FILE FIELD: the line on the CPU others took, from the
# FIELDth column of a results file.
foreign_summary() {
	awk -v lim="$MAX_FOREIGN" -v f="$2" '{if ($f > max) max = $f; if ($f > lim) over++; sum += $f}
		END {if (NR) printf "\nCPU taken by processes outside the benchmark during a run: mean %.1f%%, max %.1f%% of the machine; %d run(s) over %s%%\n",
			sum / NR, max, over, lim}' "$1"
}

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
MAX_FOREIGN=${MAX_FOREIGN:-10}
RETRIES=${RETRIES:-3}
RESULTS=${RESULTS:-}
TARGETS=(direct native_rls cloak_pass cloak_rules)

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init crm-bench
start_postgres
build_crmgen
build_pgcloak

# --- data ------------------------------------------------------------------

# crm: the CRM as pgcloak protects it. crm_native: the same data (same seed)
# with the policy written natively (bench/rls.sql).
load_crm crm
load_crm crm_native NOSETUP
log "native policy (bench/rls.sql) into crm_native"
"$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U bench -d crm_native -XAtq -v ON_ERROR_STOP=1 \
	-f "$repo/bench/rls.sql" >"$tmp/rls.log" 2>&1 || die "rls.sql failed: $(tail -n5 "$tmp/rls.log")"
sql crm_native 'vacuum analyze' >/dev/null

# --- pgcloak ---------------------------------------------------------------

start_pgcloak rules --upstream "127.0.0.1:$pg_port" \
	--rules "$repo/examples/crm/rules.yaml" --catalog-dsn "$(dsn crm)"
cport=${cloak_port[rules]}

port_of() {
	case $1 in
	direct | native_rls) echo "$pg_port" ;;
	cloak_pass | cloak_rules) echo "$cport" ;;
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

wait_sql pgcloak "$cport" alice crm "${cloak_pid[rules]}"

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

# run_target TARGET MODE CLIENTS SECONDS: sets TPS, FOREIGN and CPUTX, the
# CPU time that postgres, pgcloak and pgbench together spent per
# transaction (µs): unlike TPS, it hardly depends on what else the machine
# runs, so it is the figure to compare on a shared machine.
CPUTX=
run_target() {
	local target=$1 mode=$2 c=$3 secs=$4 j=1
	((c > 1)) && j=2
	run_pgbench -n -M "$mode" -c "$c" -j "$j" -T "$secs" -f "$repo/bench/crm_select.sql" -D "customers=$CUSTOMERS" \
		-h 127.0.0.1 -p "$(port_of "$target")" -U "$(user_of "$target")" "$(db_of "$target")"
	CPUTX=$(awk -v o="$OURS" -v hz="$hz" -v n="$TXNS" 'BEGIN {printf "%.0f", o / hz * 1e6 / n}')
}

read -r -a modes <<<"$MODES"
read -r -a clients <<<"$CLIENTS"
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
				n=$((n + 1))
				measure "[$n/$total] $t -M $m -c $c" run_target "$t" "$m" "$c" "$DURATION"
				printf '%s %s %s %s %s %s %s\n' "$t" "$m" "$c" "$r" "$TPS" "$FOREIGN" "$CPUTX" >>"$results"
				log "[$n/$total] round $r  $t  -M $m  -c $c  tps $TPS  cpu/txn ${CPUTX}µs  (others: $FOREIGN% CPU)"
			done
			cell=$((cell + 1))
		done
	done
done
[[ -n $RESULTS ]] && cp "$results" "$RESULTS"

# --- report ----------------------------------------------------------------

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

foreign_summary "$results" 6

exit
}

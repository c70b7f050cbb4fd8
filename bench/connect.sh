#!/usr/bin/env bash
# Connect-per-request benchmark: pgbench -C (a new connection for every
# transaction, as PHP, CGI-style and many legacy apps do) against six
# targets on this machine, A/B interleaved:
#
#   direct               PostgreSQL
#   pgbouncer            PgBouncer (session pooling) in front of PostgreSQL
#   cloak                pgcloak without rules (pass-through) -> PostgreSQL
#   cloak_rules          pgcloak with the CRM rules -> PostgreSQL
#   cloak_bouncer        pgcloak without rules -> PgBouncer -> PostgreSQL
#   cloak_rules_bouncer  pgcloak with the CRM rules -> PgBouncer -> PostgreSQL
#   cloak_rules_bouncer_dana   the same as dana (DBA, unrestricted), not in
#                        the default TARGETS: what rules cost a login they
#                        pass through (the session's search_path query,
#                        the policy's relay) apart from a restricted one
#
# Every target but the _dana one runs as alice, a north sales rep:
# through a pgcloak with rules each of her connections is mapped to its
# principal and every statement rewritten (PostgreSQL and PgBouncer alone
# apply no policy).
# Two workloads:
#
#   select   pgbench -S (the primary-key lookup on pgbench_accounts), which
#            the bench's rules list with every column public: the cost of a
#            restricted connection and of a cold rewrite, no policy
#   crm      bench/crm_select.sql: a customer by id, then their last orders,
#            under alice's region filter and masks
#
# PgBouncer runs in session mode with its default server_reset_query
# (DISCARD ALL), as a deployment of pgcloak in front of PgBouncer must
# (docs/deploy.md, "Pooling"). The simple protocol: with -C a prepared
# statement lives for one transaction anyway.
#
# Usage: bench/connect.sh
#
# Environment (all optional; lib.sh has the common ones):
#   DURATION=10        seconds per pgbench run
#   ROUNDS=3           rounds; each round runs every cell once per target
#   WARMUP=2           seconds of warm-up per target before the rounds
#   CLIENTS="8"        client counts
#   WORKLOADS="select crm"
#   TARGETS="direct pgbouncer cloak cloak_rules cloak_bouncer cloak_rules_bouncer"
#   SCALE=10           pgbench -i scale factor
#   CUSTOMERS=25000    customers in the sample CRM
#   MAX_FOREIGN=25, RETRIES=1   see lib.sh (measure)
#   RESULTS=FILE       also copy the raw results to FILE, one line per run:
#                      workload target clients round tps foreign-cpu-% cpu-µs-per-txn
#
# Smoke run: DURATION=2 ROUNDS=1 WARMUP=1 CUSTOMERS=5000 bench/connect.sh
set -euo pipefail

# One compound command: bash parses the whole script before running it.
{

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-"8"}
WORKLOADS=${WORKLOADS:-"select crm"}
read -r -a TARGETS <<<"${TARGETS:-direct pgbouncer cloak cloak_rules cloak_bouncer cloak_rules_bouncer}"
SCALE=${SCALE:-10}
RESULTS=${RESULTS:-}

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_init connect-bench
start_postgres
build_crmgen
build_pgcloak
load_crm crm
log "pgbench -i -s $SCALE into crm"
"$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$pg_port" -U bench crm >"$tmp/init.log" 2>&1 ||
	die "pgbench -i failed: $(tail -n5 "$tmp/init.log")"
sql crm 'grant select on pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history to alice, dana' >/dev/null
sql crm 'vacuum analyze pgbench_accounts' >/dev/null

# The CRM rules, and pgbench's tables (pgbench -S counts the branches
# first) for every role with all columns public.
rules=$tmp/rules.yaml
awk '{print} /^tables:$/ {
	print "  pgbench_accounts:"; print "    columns: {aid: public, bid: public, abalance: public, filler: public}"
	print "  pgbench_branches:"; print "    columns: {bid: public, bbalance: public, filler: public}"}' \
	"$repo/examples/crm/rules.yaml" >"$rules"
grep -q pgbench_accounts "$rules" || die "no tables: section in examples/crm/rules.yaml"

BOUNCER_RESET_QUERY='DISCARD ALL' start_pgbouncer session session bench alice dana
bport=${bouncer_port[session]}
rules_args=(--rules "$rules" --catalog-dsn "$(dsn crm)")
start_pgcloak cloak --upstream "127.0.0.1:$pg_port"
start_pgcloak cloak_rules --upstream "127.0.0.1:$pg_port" "${rules_args[@]}"
start_pgcloak cloak_bouncer --upstream "127.0.0.1:$bport"
start_pgcloak cloak_rules_bouncer --upstream "127.0.0.1:$bport" "${rules_args[@]}"

port_of() {
	case $1 in
	direct) echo "$pg_port" ;;
	pgbouncer) echo "$bport" ;;
	*_dana) echo "${cloak_port[${1%_dana}]}" ;;
	*) echo "${cloak_port[$1]}" ;;
	esac
}
user_of() { case $1 in *_dana) echo dana ;; *) echo alice ;; esac; }
wait_sql pgbouncer "$bport" alice crm "${bouncer_pid[session]}"
for t in cloak cloak_rules cloak_bouncer cloak_rules_bouncer; do
	wait_sql "$t" "$(port_of "$t")" alice crm "${cloak_pid[$t]}"
done

# The rules apply through PgBouncer too: alice sees only the north.
for t in cloak_rules cloak_rules_bouncer; do
	got=$("$PGBIN/psql" -h 127.0.0.1 -p "$(port_of "$t")" -U alice -d crm -XAtqc "select string_agg(distinct region, ',') from customers")
	[[ $got == north ]] || die "$t: alice sees regions '$got', not north only"
done

# run_target WORKLOAD TARGET CLIENTS SECONDS: sets TPS, FOREIGN and CPUTX
# (CPU µs per transaction of postgres, PgBouncer, every pgcloak and
# pgbench together: with -C, the cost of a connection and its statements).
CPUTX=
run_target() {
	local w=$1 t=$2 c=$3 secs=$4 j=1
	((c > 1)) && j=2
	local args=(-n -C -M simple -c "$c" -j "$j" -T "$secs" -h 127.0.0.1 -p "$(port_of "$t")" -U "$(user_of "$t")")
	if [[ $w == crm ]]; then
		args+=(-f "$repo/bench/crm_select.sql" -D "customers=$CUSTOMERS")
	else
		args+=(-S)
	fi
	run_pgbench "${args[@]}" crm
	CPUTX=$(awk -v o="$OURS" -v hz="$hz" -v n="$TXNS" 'BEGIN {printf "%.0f", o / hz * 1e6 / n}')
}

read -r -a workloads <<<"$WORKLOADS"
read -r -a clients <<<"$CLIENTS"
ncells=$((${#workloads[@]} * ${#clients[@]}))
total=$((ROUNDS * ncells * ${#TARGETS[@]}))
log "$total runs of ${DURATION}s (${ROUNDS} rounds x ${ncells} cells x ${#TARGETS[@]} targets), about $(((total * (DURATION + 1) + 59) / 60)) min"
if ((WARMUP > 0)); then
	for t in "${TARGETS[@]}"; do
		for w in "${workloads[@]}"; do run_target "$w" "$t" 8 "$WARMUP"; done
	done
fi

results=$tmp/results.txt
: >"$results"
n=0
for ((r = 1; r <= ROUNDS; r++)); do
	cell=0
	for w in "${workloads[@]}"; do
		for c in "${clients[@]}"; do
			rotated "$r" "$cell" "${TARGETS[@]}"
			for t in "${ORDER[@]}"; do
				n=$((n + 1))
				measure "[$n/$total] $w $t -c $c" run_target "$w" "$t" "$c" "$DURATION"
				printf '%s %s %s %s %s %s %s\n' "$w" "$t" "$c" "$r" "$TPS" "$FOREIGN" "$CPUTX" >>"$results"
				log "[$n/$total] round $r  $w  $t  -c $c  tps $TPS  cpu/txn ${CPUTX}µs  (others: $FOREIGN% CPU)"
			done
			cell=$((cell + 1))
		done
	done
done
[[ -n $RESULTS ]] && cp "$results" "$RESULTS"

# --- report ----------------------------------------------------------------

med() { # med WORKLOAD TARGET CLIENTS [FIELD]
	awk -v w="$1" -v t="$2" -v c="$3" -v f="${4:-5}" '$1 == w && $2 == t && $3 == c {print $f}' "$results" | median
}
table() { # table FIELD FORMAT
	local w c t vals
	printf '| %-8s | %7s |' workload clients
	for t in "${TARGETS[@]}"; do printf ' %s |' "$t"; done
	echo
	printf '|----------|--------:|'
	for t in "${TARGETS[@]}"; do printf '%s:|' "$(printf -- '-%.0s' $(seq $((${#t} + 1))))"; done
	echo
	for w in "${workloads[@]}"; do
		for c in "${clients[@]}"; do
			printf '| %-8s | %7s |' "$w" "$c"
			for t in "${TARGETS[@]}"; do
				printf " %${#t}s |" "$(awk -v v="$(med "$w" "$t" "$c" "$1")" -v f="$2" 'BEGIN {printf f, v}')"
			done
			echo
		done
	done
}
ratio() { # ratio W C A B: median of A / median of B
	awk -v a="$(med "$1" "$3" "$2")" -v b="$(med "$1" "$4" "$2")" 'BEGIN {printf "%.3f", a / b}'
}

echo
echo "pgbench -C (a connection per transaction), simple protocol, as alice (north sales rep); median of $ROUNDS run(s) x ${DURATION}s; $(nproc) cores shared by client, proxies and server"
echo
echo "TPS (transactions, each with its own connection, per second)"
echo
table 5 '%.0f'
echo
echo "CPU time per transaction (µs; postgres + PgBouncer + every pgcloak + pgbench): lower is better"
echo
table 7 '%.0f'
echo
echo "ratios of the medians"
echo
has() { [[ " ${TARGETS[*]} " == *" $1 "* ]]; }
for w in "${workloads[@]}"; do
	for c in "${clients[@]}"; do
		line="$w, $c clients:"
		if has direct; then
			for t in pgbouncer cloak cloak_rules cloak_bouncer cloak_rules_bouncer; do
				has "$t" && line+=" $t/direct $(ratio "$w" "$c" "$t" direct)"
			done
		fi
		has cloak_rules && has cloak && line+=" rules/pass $(ratio "$w" "$c" cloak_rules cloak)"
		if has pgbouncer; then
			for t in cloak_bouncer cloak_rules_bouncer cloak_rules_bouncer_dana; do
				has "$t" && line+=" $t/pgbouncer $(ratio "$w" "$c" "$t" pgbouncer)"
			done
		fi
		echo "$line"
	done
done
foreign_summary "$results" 6

exit
}

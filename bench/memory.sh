#!/usr/bin/env bash
# Memory per idle restricted session: pgcloak with the CRM rules, N
# sessions of alice (a north sales rep) held open at once, each having run
# one rewritten statement (the same customer by id in every session, so
# that the result cache holds one entry) and then idle. pgcloak's
# resident memory (/proc), Go heap in use and goroutines (its /metrics) are
# read before, with the N sessions open, and after they closed, for each N.
#
# Usage: bench/memory.sh
#
# Environment (all optional; lib.sh has the common ones):
#   SESSIONS="100 1000"   the numbers of sessions, one step each
#   HOLD=30               seconds each session stays open after its statement
#   CUSTOMERS=25000       customers in the sample CRM
#
# PostgreSQL gets max_connections = the largest step + 50 (each session is
# a backend: about 1,000 of them fit this machine's 23 GiB easily), and
# the script raises its open-file limit (pgcloak holds two sockets per
# session).
#
# Smoke run: SESSIONS=50 HOLD=8 CUSTOMERS=2000 bench/memory.sh
set -euo pipefail

{

SESSIONS=${SESSIONS:-"100 1000"}
HOLD=${HOLD:-30}
read -r -a steps <<<"$SESSIONS"
max=0
for n in "${steps[@]}"; do ((n > max)) && max=$n; done
MAX_CONNECTIONS=$((max + 50))
need=$((max * 3 + 200))
if [[ $(ulimit -n) != unlimited ]] && (($(ulimit -n) < need)); then
	ulimit -n "$need" 2>/dev/null || {
		echo "memory.sh: needs ulimit -n $need" >&2
		exit 1
	}
fi

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v curl >/dev/null || die "no curl"

bench_init memory-bench
start_postgres
build_crmgen
build_pgcloak
load_crm crm
new_port admin_port
PGCLOAK_LIMITS_MAX_CLIENT_CONNECTIONS=$((max + 10)) start_pgcloak rules --upstream "127.0.0.1:$pg_port" --rules "$repo/examples/crm/rules.yaml" \
	--catalog-dsn "$(dsn crm)" --admin "127.0.0.1:$admin_port"
cport=${cloak_port[rules]} cpid=${cloak_pid[rules]}
wait_sql pgcloak "$cport" alice crm "$cpid"

cat >"$tmp/idle.sql" <<EOF
SELECT customer_id, first_name, last_name, email, phone, city FROM customers WHERE customer_id = 1;
\\sleep $HOLD s
EOF

# sample LABEL: one line of figures (RSS from /proc, the rest from /metrics)
sample() {
	local m rss
	m=$(curl -fsS "http://127.0.0.1:$admin_port/metrics") || die "no /metrics"
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$cpid/status")
	awk -v label="$1" -v rss="$rss" '
		/^go_memstats_heap_inuse_bytes / {heap = $2}
		/^go_goroutines / {g = $2}
		/^pgcloak_proxy_client_connections_active / {a = $2}
		END {printf "%s %.1f %.1f %d %d\n", label, rss / 1024, heap / 1048576, g, a}' <<<"$m"
}
active() { curl -fsS "http://127.0.0.1:$admin_port/metrics" | awk '/^pgcloak_proxy_client_connections_active / {print $2 + 0}'; }

# One session first, so that what every session shares (the policy
# subqueries, the rewritten statement in the result cache) is in the
# baseline: the same statement in every session, so the figures are the
# sessions' own.
"$PGBIN/psql" -h 127.0.0.1 -p "$cport" -U alice -d crm -XAtqc "$(sed -n 1p "$tmp/idle.sql")" >/dev/null
sleep 1
out=$tmp/samples.txt
: >"$out"
sample "idle-before" | tee -a "$out" >&2
for n in "${steps[@]}"; do
	log "$n sessions of alice, each runs one statement and stays open ${HOLD}s"
	j=$((n < 4 ? n : 4))
	"$PGBIN/pgbench" -n -c "$n" -j "$j" -t 1 -f "$tmp/idle.sql" -D "customers=$CUSTOMERS" \
		-h 127.0.0.1 -p "$cport" -U alice crm >"$tmp/pgbench.$n.log" 2>&1 &
	bench_pid=$!
	# Wait until all are connected and have run their statement.
	t0=$(date +%s)
	while (($(active) < n)); do
		kill -0 "$bench_pid" 2>/dev/null || die "pgbench ended early: $(tail -n5 "$tmp/pgbench.$n.log")"
		(($(date +%s) - t0 < HOLD)) || die "only $(active) of $n sessions open after ${HOLD}s"
		sleep 0.5
	done
	log "$n open after $(($(date +%s) - t0))s"
	sleep 3
	sample "open-$n" | tee -a "$out" >&2
	wait "$bench_pid" || die "pgbench failed: $(tail -n5 "$tmp/pgbench.$n.log")"
	bench_pid=
	sleep 2
	sample "closed-$n" | tee -a "$out" >&2
done

echo
echo "pgcloak with the CRM rules, N idle sessions of alice (north sales rep), each after one rewritten statement"
echo
echo "| point | RSS MiB | Go heap in use MiB | goroutines | sessions | RSS per session KiB (vs before) | heap per session KiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
awk 'NR == 1 {r0 = $2; h0 = $3}
	{per = "-"; hper = "-"
	 if ($5 > 0) {per = sprintf("%.0f", ($2 - r0) * 1024 / $5); hper = sprintf("%.0f", ($3 - h0) * 1024 / $5)}
	 printf "| %s | %.1f | %.1f | %d | %d | %s | %s |\n", $1, $2, $3, $4, $5, per, hper}' "$out"

exit
}

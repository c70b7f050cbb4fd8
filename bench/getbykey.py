"""Get-by-key with psycopg2, for bench/psycopg2.sh: one connection, then
CALLS lookups of a customer by a random id, each timed.

    getbykey.py DSN CALLS CUSTOMERS SEED WARMUP

psycopg2 puts the id into the statement text itself and sends it with the
simple protocol (a Query message), as legacy Python CRM code does. The
connection is in autocommit, so a call is one statement and one round
trip (psycopg2's default would open a transaction with BEGIN at the first
call and keep it open). WARMUP calls before the timed ones are not counted.

Prints one line: calls, connect ms, mean ms per call, median ms per call,
p99 ms, rows returned, and the process's CPU time per timed call in µs.
"""

import random
import statistics
import sys
import time

import psycopg2

SQL = ("SELECT customer_id, customer_number, first_name, last_name, email, phone, city, segment "
       "FROM customers WHERE customer_id = %s")


def main():
    dsn, calls, customers, seed, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    rnd = random.Random(seed)
    t0 = time.perf_counter()
    conn = psycopg2.connect(dsn)
    connect_ms = (time.perf_counter() - t0) * 1e3
    conn.autocommit = True
    cur = conn.cursor()
    for _ in range(warmup):
        cur.execute(SQL, (rnd.randint(1, customers),))
        cur.fetchall()
    ids = [rnd.randint(1, customers) for _ in range(calls)]
    times = []
    rows = 0
    cpu0 = time.process_time()
    for key in ids:
        t = time.perf_counter()
        cur.execute(SQL, (key,))
        rows += len(cur.fetchall())
        times.append(time.perf_counter() - t)
    cpu = time.process_time() - cpu0
    conn.close()
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print("%d %.3f %.4f %.4f %.4f %d %.1f" % (
        calls, connect_ms, statistics.fmean(times) * 1e3, statistics.median(times) * 1e3, p99 * 1e3, rows,
        cpu / calls * 1e6))


if __name__ == "__main__":
    main()

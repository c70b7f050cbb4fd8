"""psycopg2, the driver with its defaults: a transaction opened by the
first statement, committed by the program."""

import psycopg2

from common import BASE, CUSTOMER, NEW_PHONE, URL, new_customer, run

conn = psycopg2.connect(URL)
cur = conn.cursor()


def rows(sql, *args):
    cur.execute(sql, args)
    out = cur.fetchall() if cur.description else []
    conn.commit()
    return out


COLS = "customer_id, customer_number, first_name, last_name, email, phone, region, segment, created_at"


def insert_sql(suffix=""):
    return "INSERT INTO customers (" + COLS + ") VALUES (%(customer_id)s, %(customer_number)s, %(first_name)s, " \
        "%(last_name)s, %(email)s, %(phone)s, %(region)s, %(segment)s, %(created_at)s)" + suffix


def create():
    cur.execute(insert_sql(" RETURNING customer_id"), new_customer(1, "Create"))
    out = cur.fetchall()
    conn.commit()
    return out


def bulk():
    cur.executemany(insert_sql(), [new_customer(n, "Bulk") for n in (2, 3, 4)])
    conn.commit()


def upsert():
    cur.execute(insert_sql(" ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone"),
                new_customer(8, "Fixture", phone="+1 555 0108"))
    conn.commit()


def transaction():
    cur.execute("SAVEPOINT s")
    inner = "ok"
    try:
        cur.execute(insert_sql(), new_customer(5, "South", region="south"))
    except psycopg2.Error as e:
        inner = e.pgcode
        cur.execute("ROLLBACK TO SAVEPOINT s")
    cur.execute(insert_sql(), new_customer(6, "After"))
    conn.commit()
    return [[inner]]


run("list", lambda: rows("SELECT customer_id, first_name, last_name, email, city, postal_code FROM customers "
                         "WHERE segment = %s ORDER BY customer_id DESC LIMIT 5 OFFSET 2", "premium"), conn.rollback)
run("get", lambda: rows("SELECT customer_id, first_name, last_name, email, phone, postal_code FROM customers "
                        "WHERE customer_id = %s", CUSTOMER), conn.rollback)
run("count", lambda: rows("SELECT count(*) FROM customers WHERE segment = %s", "premium"), conn.rollback)
run("join", lambda: rows("SELECT o.order_id, o.status, c.last_name FROM orders o JOIN customers c "
                         "ON c.customer_id = o.customer_id WHERE o.customer_id = %s ORDER BY o.order_id", CUSTOMER), conn.rollback)
run("aggregate", lambda: rows("SELECT c.customer_id, c.last_name, count(o.order_id) FROM customers c "
                              "LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.segment = %s "
                              "GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 5", "premium"), conn.rollback)
run("update", lambda: rows("UPDATE customers SET phone = %s WHERE customer_id = %s", NEW_PHONE, CUSTOMER), conn.rollback)
run("create", create, conn.rollback)
run("bulk", bulk, conn.rollback)
run("upsert", upsert, conn.rollback)
run("delete", lambda: rows("DELETE FROM customers WHERE customer_id = %s", BASE + 9), conn.rollback)
run("transaction", transaction, conn.rollback)
conn.close()

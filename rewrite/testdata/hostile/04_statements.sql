-- Hostile queries, part 4: statement kinds: EXPLAIN, COPY, cursors,
-- prepared statements, settings and roles, DO, CALL, LISTEN/NOTIFY, DDL,
-- writes used as oracles, and several statements in one string.

-- group: EXPLAIN
-- Plans must show no values; EXPLAIN ANALYZE runs the query.

EXPLAIN SELECT * FROM customers WHERE customer_id = ${C2.customer_id}

EXPLAIN (VERBOSE) SELECT national_id, street FROM customers

EXPLAIN ANALYZE SELECT * FROM customers

EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT * FROM customers WHERE national_id = 'x'

EXPLAIN (FORMAT JSON) SELECT * FROM orders

EXPLAIN SELECT * FROM commissions

EXPLAIN DELETE FROM customers

EXPLAIN (ANALYZE) SELECT leak_notice(national_id) FROM customers

EXPLAIN (VERBOSE, FORMAT YAML) SELECT * FROM customers c JOIN orders o USING (customer_id)

-- group: COPY
-- COPY TO is for the disclosure export role only, and then rewritten.

COPY customers TO STDOUT

COPY customers (customer_id, first_name, city) TO STDOUT

COPY (SELECT * FROM customers) TO STDOUT

COPY (SELECT customer_id, national_id, street FROM customers) TO STDOUT WITH (FORMAT csv, HEADER)

COPY orders TO STDOUT (FORMAT binary)

COPY commissions TO STDOUT

COPY customers TO '/tmp/pgcloak_leak.csv'

COPY customers TO PROGRAM 'cat'

COPY customers FROM STDIN

COPY (SELECT * FROM customers_vip) TO STDOUT

COPY order_lines TO STDOUT

COPY (SELECT c FROM customers c) TO STDOUT

-- group: cursors
-- DECLARE, FETCH and MOVE.

BEGIN; DECLARE c CURSOR FOR SELECT * FROM customers; FETCH ALL c; COMMIT

BEGIN; DECLARE c SCROLL CURSOR WITH HOLD FOR SELECT national_id, street FROM customers; FETCH LAST FROM c; COMMIT

BEGIN; DECLARE c CURSOR FOR SELECT * FROM commissions; FETCH 10 c; COMMIT

BEGIN; DECLARE c SCROLL CURSOR FOR TABLE customers; MOVE FORWARD ALL IN c; FETCH BACKWARD 5 FROM c; COMMIT

BEGIN; DECLARE c BINARY CURSOR FOR SELECT * FROM customers; FETCH ALL c; COMMIT

BEGIN; DECLARE c CURSOR FOR SELECT * FROM customers WHERE customer_id = ${C2.customer_id}; FETCH c; COMMIT

DECLARE c CURSOR WITH HOLD FOR SELECT * FROM customers

DECLARE c CURSOR WITH HOLD FOR SELECT first_name FROM customers WHERE region = 'south'; FETCH ALL FROM c; CLOSE c

BEGIN; DECLARE c CURSOR FOR SELECT 1; SELECT cursor_to_xml('c', 10, true, false, ''); COMMIT

-- group: PREPARE and EXECUTE
-- Statements prepared in SQL, and parameters in the extended protocol.

PREPARE p AS SELECT * FROM customers; EXECUTE p

PREPARE p(bigint) AS SELECT * FROM customers WHERE customer_id = $1; EXECUTE p(${C2.customer_id})

PREPARE p AS SELECT national_id FROM customers WHERE region = 'south'; EXECUTE p; DEALLOCATE p

PREPARE p AS SELECT * FROM commissions; EXECUTE p

PREPARE p AS INSERT INTO customers (customer_id) VALUES (1)

EXECUTE leak_plan

-- @args ${C2.customer_id}
SELECT * FROM customers WHERE customer_id = $1

-- @args south
SELECT first_name, national_id FROM customers WHERE region = $1

-- @args ${C1.national_id}
SELECT count(*), max(street) FROM customers WHERE national_id = $1

-- @args CNRY%
SELECT customer_id, phone FROM customers WHERE phone LIKE $1

-- group: settings, roles and search_path
-- Changing what names mean, who the session is, or how strings are read.

SET search_path = shadow, public; SELECT * FROM customers

SET search_path TO pg_temp, public

SET LOCAL search_path = shadow

BEGIN; SET LOCAL search_path = shadow; SELECT * FROM customers; COMMIT

SELECT set_config('search_path', 'shadow', true); SELECT * FROM customers

RESET search_path; SELECT * FROM customers

SET ROLE dana; SELECT * FROM customers

SET SESSION AUTHORIZATION dana

RESET ROLE

SET role = 'petra'

SET standard_conforming_strings = off

SET pgcloak.end_user = 'petra'

SET pgcloak.purpose = 'none'

RESET ALL

SET client_encoding = 'SJIS'

SET NAMES 'BIG5'

SET row_security = off

SET session_replication_role = replica

ALTER ROLE alice SET search_path = shadow

SET enable_seqscan = off

SET TRANSACTION ISOLATION LEVEL SERIALIZABLE

SHOW search_path

-- group: standard_conforming_strings games
-- With the setting off a backslash would end a string where pg_query says
-- it does not.

SET standard_conforming_strings TO off; SELECT 'a\' , national_id FROM customers --'

SELECT set_config('standard_conforming_strings', 'off', false); SELECT 'a\' , national_id FROM customers --'

BEGIN; SET LOCAL standard_conforming_strings = off; SELECT 'x\' , street FROM customers --'; COMMIT

SET escape_string_warning = off

SET backslash_quote = on

-- group: DO, CALL, LISTEN and NOTIFY
-- Code pgcloak cannot inspect, and channels that carry payloads.

DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(national_id, ',') FROM customers); END $$

DO LANGUAGE plpgsql $body$ BEGIN PERFORM 1; END $body$

CALL leak_proc()

LISTEN leak_channel

NOTIFY leak_channel, 'x'

LISTEN leak; SELECT pg_notify('leak', (SELECT string_agg(first_name, ',') FROM customers WHERE region <> 'north'))

LISTEN leak; NOTIFY leak, 'hello'; SELECT pg_notify('leak', national_id) FROM customers

UNLISTEN *

-- group: DDL and maintenance
-- Creating objects over protected data, or changing the tables.

CREATE TEMP TABLE t AS SELECT * FROM customers

SELECT * INTO TEMP t2 FROM customers

CREATE TEMP VIEW tv AS SELECT * FROM customers

CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT national_id FROM customers LIMIT 1 $$

ALTER TABLE customers ENABLE ROW LEVEL SECURITY

GRANT SELECT ON customers TO PUBLIC

CREATE RULE r AS ON SELECT TO customers DO INSTEAD SELECT * FROM customers_copy

TRUNCATE customers

LOCK TABLE customers

VACUUM customers

ANALYZE customers

LOAD 'plpgsql'

ALTER SYSTEM SET log_statement = 'all'

CREATE EXTENSION dblink

COMMENT ON TABLE customers IS 'x'

-- group: writes as oracles
-- A write's row count or error tells whether a hidden row exists.

UPDATE customers SET first_name = first_name WHERE customer_id = ${C2.customer_id}

UPDATE customers SET first_name = first_name WHERE region = 'south' RETURNING *

DELETE FROM customers WHERE customer_id = ${C2.customer_id} RETURNING national_id

INSERT INTO customers SELECT * FROM customers WHERE customer_id = ${C2.customer_id}

INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) VALUES (${C2.customer_id}, 'x', 'x', 'x', 'north', 'x', now())

WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d

MERGE INTO customers c USING (SELECT 1) s ON true WHEN MATCHED THEN DO NOTHING

UPDATE orders SET status = status WHERE customer_id = ${C2.customer_id} RETURNING *

INSERT INTO campaign_members (campaign_id, customer_id, added_at) VALUES (7394001, ${C4.customer_id}, now())

SELECT * FROM customers FOR UPDATE

SELECT * FROM customers WHERE customer_id = ${C2.customer_id} FOR UPDATE NOWAIT

-- group: several statements in one string
-- Each statement is decided on its own.

SELECT 1; SELECT national_id FROM customers

SELECT first_name FROM customers LIMIT 1; SET search_path = shadow; SELECT * FROM customers

BEGIN; SELECT * FROM customers; SET ROLE dana; SELECT * FROM customers; COMMIT

SELECT 1; DO $$ BEGIN END $$; SELECT * FROM commissions

SELECT * FROM customers WHERE region = 'north'; SELECT * FROM customers WHERE region = 'south'

SHOW search_path; SELECT * FROM customers

COMMIT; SELECT * FROM customers; ROLLBACK

SELECT 'a'; SELECT pg_read_file('x'); SELECT national_id FROM customers

SELECT 1;;; SELECT street FROM customers;

BEGIN; SELECT 1/0; ROLLBACK; SELECT first_name FROM customers WHERE region = 'south'

-- group: writes that reach hidden values
-- Writes a role may run, with hidden values in SET, WHERE or RETURNING.

UPDATE customers SET segment = national_id WHERE customer_id = ${C1.customer_id} RETURNING segment

UPDATE customers SET first_name = street WHERE customer_id = ${C1.customer_id} RETURNING first_name, street

UPDATE customers c SET segment = o.shipping_street FROM orders o WHERE o.customer_id = c.customer_id RETURNING c.segment

INSERT INTO customers (customer_id, customer_number, first_name, last_name, region, segment, created_at) SELECT customer_id + 1000000, customer_number || 'x', national_id, street, region, phone, now() FROM customers WHERE customer_id = ${C1.customer_id} RETURNING *

DELETE FROM customers WHERE customer_id = ${C1.customer_id} RETURNING *

UPDATE support_tickets SET subject = body RETURNING subject

UPDATE orders SET shipping_city = (SELECT national_id FROM customers c WHERE c.customer_id = orders.customer_id) RETURNING shipping_city

COPY customers FROM STDIN WITH (FORMAT csv)

UPDATE customers SET segment = NULL WHERE customer_id = ${C1.customer_id}

UPDATE customers SET region = 'nowhere' WHERE customer_id = ${C1.customer_id}

UPDATE customers SET first_name = NULL WHERE customer_id = ${C1.customer_id}

UPDATE support_tickets SET status = NULL WHERE ticket_id = ${T1.ticket_id}

UPDATE orders SET status = NULL WHERE order_id = ${O1.order_id}

UPDATE campaign_members SET added_at = NULL WHERE customer_id = ${C1.customer_id}

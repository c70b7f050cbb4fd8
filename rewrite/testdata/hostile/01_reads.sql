-- Hostile queries for the leak suite (rewrite/leak_test.go), part 1: reading
-- protected relations by every name and shape PostgreSQL accepts.
--
-- Format: "-- group: technique" opens a group; comment lines right after it
-- describe it. Entries are separated by blank lines. "-- @probe" before an
-- entry makes it an existence probe (run for the hidden value and for an
-- absent one; the outcomes must be equal); "-- @args a, b" binds $1, $2.
-- ${ROW.col} is the planted value of a cell (see leak_plant_test.go):
-- C1-C10 customers (C2 south, C3 east, C4 opted out of direct marketing,
-- C5 of automated decisions, C6 of third-party disclosure, C7 of sensitive
-- data, C8 west and out of everything, C9/C10 in the child customers_vip),
-- On orders, Ln order_lines, Tn support_tickets, A1/A2 and K1/K2 accounts
-- and contacts (north/south), R9 a sales rep, M1 a commission, S1 a target,
-- P1 a campaign.

-- group: direct reads
-- Plain SELECTs of every protected table and of the hidden columns.

SELECT * FROM customers

SELECT national_id, religion, ethnicity, health_notes FROM customers

SELECT first_name, last_name, email, phone, street, postal_code, annual_income, loyalty_points, birth_date FROM customers WHERE region = 'south'

SELECT * FROM customers WHERE customer_id = ${C2.customer_id}

SELECT * FROM orders

SELECT * FROM order_lines

SELECT * FROM support_tickets

SELECT * FROM campaign_members

SELECT * FROM customer_opt_outs

SELECT * FROM accounts

SELECT * FROM contacts

SELECT * FROM sales_reps

SELECT * FROM commissions

SELECT * FROM sales_targets

SELECT * FROM campaigns

SELECT * FROM customers_vip

SELECT vip_note, national_id FROM customers_vip

TABLE customers

TABLE commissions

SELECT * FROM ONLY customers

SELECT * FROM customers*

SELECT * FROM ONLY customers_vip

-- group: schema-qualified and quoted names
-- The same relations under every spelling of their name.

SELECT * FROM public.customers

SELECT * FROM public."customers"

SELECT * FROM "public".customers

SELECT * FROM "public"."customers"

SELECT * FROM PUBLIC.CUSTOMERS

SELECT * FROM "PUBLIC"."customers"

SELECT * FROM "Customers"

SELECT * FROM U&"\0063ustomers"

SELECT * FROM U&"!0063ustomers" UESCAPE '!'

SELECT public.customers.national_id, public.customers.first_name FROM public.customers

SELECT public.customers.* FROM public.customers

SELECT customers.national_id FROM public.customers

SELECT "public"."customers"."street" FROM "public"."customers" WHERE "public"."customers"."region" <> 'north'

SELECT * FROM pgcloak_leak.public.customers

SELECT pgcloak_leak.public.customers.national_id FROM customers

SELECT * FROM pg_temp.customers

SELECT * FROM shadow.customers

SELECT * FROM shadow.orders

SELECT * FROM pgcloak.pseudonym_key

SELECT * FROM public.commissions c

SELECT * FROM customers AS orders WHERE orders.customer_id = ${C2.customer_id}

SELECT * FROM orders AS customers

-- group: whole-row references and JSON
-- The row as one value: every column, masked or not, travels with it.

SELECT c FROM customers c

SELECT customers FROM customers

SELECT row_to_json(c) FROM customers c

SELECT to_jsonb(c) FROM customers c

SELECT to_json(customers.*) FROM customers

SELECT json_agg(c) FROM customers c

SELECT jsonb_agg(o) FROM orders o

SELECT c::text FROM customers c

SELECT (c).* FROM customers c

SELECT (c).national_id, (c).street FROM customers c

SELECT national_id(c), street(c) FROM customers c

SELECT row(c.*)::text FROM customers c

SELECT array_agg(k) FROM contacts k

SELECT * FROM jsonb_each_text((SELECT to_jsonb(c) FROM customers c WHERE customer_id = ${C2.customer_id}))

SELECT format('%s', c) FROM customers c

SELECT jsonb_populate_record(NULL::customers, to_jsonb(c)) FROM customers c

SELECT hashtext(c::text), c::text FROM customers c WHERE customer_id = ${C1.customer_id}

SELECT xmlelement(name x, c.national_id, c.street) FROM customers c

SELECT to_jsonb(t) FROM support_tickets t

SELECT row_to_json(m) FROM commissions m

-- group: subqueries and CTEs
-- Protected relations inside subqueries, CTEs (recursive or not), and CTE
-- names that shadow protected tables or are shadowed by them.

WITH x AS (SELECT * FROM customers) SELECT * FROM x

WITH customers AS (SELECT * FROM public.customers) SELECT * FROM customers

WITH customers AS (SELECT * FROM customers) SELECT national_id FROM customers

WITH orders AS (SELECT * FROM customers) SELECT * FROM orders

WITH RECURSIVE customers AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM customers WHERE n < 3) SELECT * FROM customers, public.customers c WHERE c.customer_id = ${C2.customer_id}

WITH x AS MATERIALIZED (SELECT national_id, customer_id FROM customers) SELECT * FROM x WHERE customer_id = ${C2.customer_id}

WITH x AS NOT MATERIALIZED (SELECT national_id, customer_id, first_name FROM customers) SELECT * FROM x WHERE customer_id = ${C2.customer_id}

WITH RECURSIVE r(id) AS (SELECT customer_id FROM customers WHERE customer_id = ${C2.customer_id} UNION SELECT id FROM r) SELECT * FROM r

SELECT * FROM (SELECT * FROM customers) s

SELECT * FROM (SELECT * FROM (SELECT national_id, first_name FROM customers) a) b

SELECT (SELECT first_name FROM customers WHERE customer_id = ${C2.customer_id})

SELECT ARRAY(SELECT first_name FROM customers WHERE region <> 'north')

SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = ${C2.customer_id})

SELECT * FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE order_id = ${O2.order_id})

SELECT * FROM (WITH customers AS (SELECT 2 AS x) SELECT * FROM customers) s, customers

SELECT * FROM customers WHERE customer_id = (WITH customers AS (SELECT ${C2.customer_id}::bigint AS customer_id) SELECT customer_id FROM customers)

WITH x AS (SELECT * FROM commissions) SELECT * FROM x

WITH x AS (SELECT 1) SELECT * FROM x, LATERAL (WITH y AS (SELECT * FROM sales_targets) SELECT * FROM y) z

WITH a AS (SELECT * FROM customers), b AS (SELECT * FROM a WHERE region = 'south') SELECT * FROM b

WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM customers) SELECT * FROM a

SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM support_tickets t WHERE t.customer_id = c.customer_id AND t.body LIKE '%CNRY%')

-- group: set operations
-- UNION, INTERSECT and EXCEPT across protected relations and branches.

SELECT first_name FROM customers UNION SELECT national_id FROM customers

SELECT national_id FROM customers UNION ALL SELECT religion FROM customers

SELECT customer_id FROM customers EXCEPT SELECT 1

SELECT first_name FROM customers WHERE region = 'north' UNION ALL SELECT first_name FROM customers WHERE region = 'south'

(SELECT * FROM customers) INTERSECT (SELECT * FROM customers)

SELECT name FROM campaigns UNION SELECT login FROM sales_reps UNION SELECT shipping_name FROM orders

SELECT * FROM (SELECT customer_id, national_id FROM customers UNION ALL SELECT customer_id, national_id FROM customers_vip) u

SELECT amount::text FROM commissions UNION SELECT target_amount::text FROM sales_targets

SELECT street FROM customers UNION SELECT shipping_street FROM orders UNION SELECT body FROM support_tickets

-- group: LATERAL and joins
-- Joins between protected relations, with unprotected ones, and LATERAL.

SELECT c.first_name, o.* FROM customers c JOIN orders o USING (customer_id)

SELECT * FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id

SELECT c.* FROM generate_series(${C1.customer_id}, ${C10.customer_id}) g(id) LEFT JOIN customers c ON c.customer_id = g.id

SELECT * FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.customer_id) x

SELECT * FROM (VALUES (${C2.customer_id}::bigint)) v(id), LATERAL (SELECT * FROM customers WHERE customer_id = v.id) x

SELECT * FROM customers c NATURAL JOIN customers_vip

SELECT * FROM order_lines l JOIN orders o USING (order_id) JOIN customers c USING (customer_id)

SELECT * FROM contacts k JOIN accounts a USING (account_id)

SELECT * FROM customers c FULL JOIN sales_reps r ON r.rep_id = c.rep_id

SELECT * FROM customers c CROSS JOIN LATERAL jsonb_each_text(to_jsonb(c)) j

SELECT * FROM pg_class pc RIGHT JOIN customers c ON pc.oid::bigint = c.customer_id

SELECT * FROM support_tickets t JOIN customers c USING (customer_id)

SELECT * FROM campaign_members m JOIN campaigns p USING (campaign_id) JOIN customers c USING (customer_id)

SELECT * FROM customer_opt_outs x JOIN customers c USING (customer_id)

SELECT * FROM commissions m JOIN sales_reps r USING (rep_id)

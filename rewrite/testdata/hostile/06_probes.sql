-- Hostile queries, part 6: error-based and existence probes. Each runs
-- twice for every role that may not see the probed value: once with the
-- value planted in a hidden cell and once with a value that exists
-- nowhere. The two outcomes (SQLSTATEs, row counts and rows) must be the
-- same, or the query is an oracle on the hidden value.

-- group: error probes on rows outside the filter
-- A non-leakproof expression (division, cast, raising function) that would
-- fail only on the hidden row.

-- @probe
SELECT 1 FROM customers WHERE 1/(CASE WHEN national_id = '${C2.national_id}' THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE (CASE WHEN customer_id = ${C2.customer_id} THEN 'x' ELSE '1' END)::int = 1

-- @probe
SELECT count(*) FROM customers WHERE (CASE WHEN first_name = '${C2.first_name}' THEN 'x' ELSE '1' END)::int = 1

-- @probe
SELECT count(*) FROM customers WHERE first_name = '${C2.first_name}' AND 1/0 = 1

-- @probe
SELECT count(*) FROM customers WHERE region <> 'north' AND 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM orders WHERE 1/(CASE WHEN order_id = ${O2.order_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers c JOIN orders o ON 1/(CASE WHEN o.order_id = ${O2.order_id} THEN 0 ELSE 1 END) = 1 AND o.customer_id = c.customer_id

-- @probe
SELECT count(*) FROM customers WHERE EXISTS (SELECT 1 WHERE 1/(CASE WHEN customers.customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1)

-- @probe
SELECT count(*) FROM (SELECT * FROM customers) s WHERE 1/(CASE WHEN s.customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
WITH s AS (SELECT * FROM customers) SELECT count(*) FROM s WHERE 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE customer_id = ${C2.customer_id} OR 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE to_date(CASE WHEN customer_id = ${C2.customer_id} THEN 'bad' ELSE '2020-01-01' END, 'YYYY-MM-DD') IS NOT NULL

-- @probe
SELECT count(*) FROM customers WHERE (CASE WHEN customer_id = ${C2.customer_id} THEN '[' ELSE '{}' END)::jsonb IS NOT NULL

-- @probe
SELECT count(*) FROM customers WHERE regexp_match(first_name, CASE WHEN customer_id = ${C2.customer_id} THEN '(' ELSE 'x' END) IS NULL

-- @probe
SELECT count(*) FROM customers WHERE sqrt(CASE WHEN customer_id = ${C2.customer_id} THEN -1 ELSE 1 END) > 0

-- @probe
SELECT count(*) FROM customers WHERE chr(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 65 END) = 'A'

-- @probe
SELECT count(*) FROM customers WHERE ('2020-01-01'::date + CASE WHEN customer_id = ${C2.customer_id} THEN 999999999 ELSE 1 END) IS NOT NULL

-- @probe
SELECT count(*) FROM customers c, LATERAL (SELECT 1/(CASE WHEN c.customer_id = ${C2.customer_id} THEN 0 ELSE 1 END)) x

-- @probe
SELECT customer_id FROM customers GROUP BY customer_id HAVING 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1 ORDER BY 1 LIMIT 1

-- @probe
SELECT customer_id FROM customers ORDER BY 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END), customer_id LIMIT 1

-- @probe
SELECT count(1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END)) FROM customers

-- @probe
SELECT count(*) FROM (SELECT customer_id FROM customers UNION ALL SELECT 0) u WHERE 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM orders WHERE customer_id IN (SELECT customer_id FROM customers WHERE 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1)

-- @probe
SELECT count(*) FROM support_tickets WHERE 1/(CASE WHEN ticket_id = ${T2.ticket_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM order_lines WHERE 1/(CASE WHEN order_id = ${L2.order_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN customer_id = ${C4.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM campaign_members WHERE 1/(CASE WHEN customer_id = ${G4.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN customer_id = ${C5.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM orders WHERE 1/(CASE WHEN customer_id = ${O5.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN customer_id = ${C6.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customer_opt_outs WHERE 1/(CASE WHEN customer_id = ${X8_automated_decision.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM contacts WHERE 1/(CASE WHEN contact_id = ${K2.contact_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM accounts WHERE 1/(CASE WHEN account_id = ${A2.account_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN customer_id = ${C9.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN street = '${C1.street}' THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN annual_income = ${C1.annual_income} THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN birth_date = '${C1.birth_date}' THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM support_tickets WHERE 1/(CASE WHEN body = '${T1.body}' THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM customers WHERE 1/(CASE WHEN phone LIKE '%${C1.phone}%' THEN 0 ELSE 1 END) = 1

-- @probe
SELECT count(*) FROM commissions WHERE 1/(CASE WHEN amount = ${M1.amount} THEN 0 ELSE 1 END) = 1

-- group: existence probes by row count
-- Predicates on hidden values or hidden rows: the count must not move.

-- @probe
SELECT count(*) FROM customers WHERE customer_id = ${C2.customer_id}

-- @probe
SELECT count(*) FROM customers WHERE national_id = '${C1.national_id}'

-- @probe
SELECT count(*) FROM customers WHERE national_id LIKE '${C1.national_id}%'

-- @probe
SELECT count(*) FROM customers WHERE phone = '${C1.phone}'

-- @probe
SELECT count(*) FROM customers WHERE street ILIKE '%${C1.street}%'

-- @probe
SELECT count(*) FROM customers WHERE postal_code = '${C1.postal_code}'

-- @probe
SELECT count(*) FROM customers WHERE annual_income = ${C1.annual_income}

-- @probe
SELECT count(*) FROM customers WHERE birth_date = '${C1.birth_date}'

-- @probe
SELECT count(*) FROM customers WHERE loyalty_points = ${C1.loyalty_points}

-- @probe
SELECT count(*) FROM customers WHERE email = '${C1.email}'

-- @probe
SELECT count(*) FROM customers WHERE first_name = '${C2.first_name}'

-- @probe
SELECT count(*) FROM customers WHERE national_id ~ '${C1.national_id}'

-- @probe
SELECT count(*) FROM customers c WHERE jsonb_path_exists(to_jsonb(c), '$.national_id ? (@ == "${C1.national_id}")')

-- @probe
SELECT count(*) FROM support_tickets WHERE body = '${T1.body}'

-- @probe
SELECT count(*) FROM orders WHERE shipping_street = '${O1.shipping_street}'

-- @probe
SELECT count(*) FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE order_id = ${O2.order_id})

-- @probe
SELECT count(*) FROM campaign_members WHERE customer_id = ${C4.customer_id}

-- @probe
SELECT count(*) FROM customer_opt_outs WHERE customer_id = ${C5.customer_id}

-- @probe
SELECT count(*) FROM customers WHERE customer_id = ${C9.customer_id}

-- @probe
SELECT count(*) FROM customers_vip WHERE vip_note = '${C10.vip_note}'

-- @probe
SELECT count(*) FROM contacts WHERE account_id = ${A2.account_id}

-- @probe
-- @args ${C2.customer_id}
SELECT count(*) FROM customers WHERE customer_id = $1

-- group: EXPLAIN as an oracle
-- Plans and executed plans of probes: row counts, removed rows.

-- @probe
EXPLAIN (COSTS OFF) SELECT * FROM customers WHERE customer_id = ${C2.customer_id}

-- @probe
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT * FROM customers WHERE customer_id = ${C2.customer_id}

-- @probe
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT * FROM customers WHERE first_name = '${C2.first_name}'

-- @probe
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT * FROM orders WHERE order_id = ${O2.order_id}

-- @probe
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT count(*) FROM customers WHERE 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- group: writes as existence probes
-- Row counts, RETURNING, constraint and check errors of writes that aim at
-- hidden rows or hidden values (each runs in a transaction that is rolled
-- back).

-- @probe
UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id}

-- @probe
UPDATE customers SET segment = segment WHERE first_name = '${C2.first_name}' RETURNING customer_id

-- @probe
UPDATE customers SET segment = segment WHERE national_id = '${C1.national_id}'

-- @probe
UPDATE customers SET segment = segment WHERE 1/(CASE WHEN customer_id = ${C2.customer_id} THEN 0 ELSE 1 END) = 1

-- @probe
DELETE FROM orders WHERE order_id = ${O2.order_id}

-- @probe
DELETE FROM customers WHERE street = '${C1.street}'

-- @probe
UPDATE orders SET status = status WHERE customer_id = ${C2.customer_id} RETURNING order_id

-- @probe
UPDATE orders o SET status = o.status FROM customers c WHERE c.customer_id = o.customer_id AND c.national_id = '${C1.national_id}'

-- @probe
DELETE FROM support_tickets t USING customers c WHERE c.customer_id = t.customer_id AND c.customer_id = ${C2.customer_id}

-- @probe
INSERT INTO orders (order_id, customer_id, ordered_at, status, total_amount, shipping_name, shipping_street, shipping_city, shipping_postal_code, shipping_region) VALUES (73929999, ${C2.customer_id}, now(), 'placed', 1, 'x', 'x', 'x', 'x', 'x')

-- @probe
INSERT INTO campaign_members (campaign_id, customer_id, added_at) VALUES (7394001, ${C4.customer_id}, now())

-- @probe
INSERT INTO customer_opt_outs (customer_id, purpose, opted_out_at) VALUES (${C2.customer_id}, 'direct_marketing', now())

-- @probe
WITH u AS (UPDATE customers SET segment = segment WHERE customer_id = ${C2.customer_id} RETURNING 1) SELECT count(*) FROM u

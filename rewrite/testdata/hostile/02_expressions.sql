-- Hostile queries, part 2: getting hidden or masked values out through
-- expressions: aggregates, windows, grouping and ordering, string and
-- regular-expression functions that would rebuild a partial mask, JSON
-- paths, casts and arithmetic on generalized values.

-- group: aggregates
-- Aggregates over hidden values and over rows outside the filter.

SELECT string_agg(national_id, ',') FROM customers

SELECT string_agg(first_name || ' ' || last_name, ',') FROM customers WHERE region <> 'north'

SELECT array_agg(phone), array_agg(street), array_agg(postal_code) FROM customers

SELECT count(*), count(national_id), count(DISTINCT religion) FROM customers

SELECT max(national_id), min(health_notes), max(religion), min(ethnicity) FROM customers

SELECT sum(annual_income), avg(annual_income), max(annual_income) FROM customers

SELECT max(loyalty_points), max(birth_date), min(birth_date) FROM customers

SELECT region, count(*), string_agg(first_name, ',') FROM customers GROUP BY region

SELECT sum(amount), max(amount) FROM commissions

SELECT string_agg(body, '|') FROM support_tickets

SELECT json_object_agg(customer_id, national_id) FROM customers

SELECT max(total_amount), string_agg(status, ','), string_agg(shipping_street, ',') FROM orders

SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY annual_income) FROM customers

SELECT mode() WITHIN GROUP (ORDER BY street) FROM customers

SELECT count(*) FILTER (WHERE national_id IS NOT NULL), count(*) FILTER (WHERE region <> 'north') FROM customers

SELECT bit_or(loyalty_points), max(unit_price) FROM customers, order_lines WHERE order_lines.order_id = customers.customer_id + 10000

-- group: window functions
-- Windows that look at neighbouring rows.

SELECT customer_id, lag(national_id) OVER (ORDER BY customer_id), first_value(street) OVER () FROM customers

SELECT customer_id, nth_value(email, 1) OVER (ORDER BY customer_id DESC) FROM customers

SELECT customer_id, count(*) OVER (PARTITION BY national_id) FROM customers

SELECT *, row_number() OVER (ORDER BY annual_income DESC) FROM customers

SELECT max(national_id) OVER w, last_value(phone) OVER w FROM customers WINDOW w AS (ORDER BY religion)

SELECT customer_id, lead(first_name, 1) OVER (ORDER BY customer_id) FROM customers WHERE customer_id > ${C1.customer_id} - 2

-- group: grouping and ordering on hidden values
-- GROUP BY, ORDER BY, DISTINCT and DISTINCT ON over values the role may not see.

SELECT national_id, count(*) FROM customers GROUP BY national_id

SELECT customer_id FROM customers ORDER BY national_id DESC NULLS LAST LIMIT 5

SELECT customer_id, annual_income FROM customers ORDER BY annual_income DESC LIMIT 3

SELECT religion FROM customers GROUP BY religion HAVING count(*) > 0

SELECT * FROM customers ORDER BY 17 DESC LIMIT 3

SELECT DISTINCT ON (national_id) national_id, customer_id FROM customers

SELECT DISTINCT health_notes FROM customers

SELECT customer_id, phone FROM customers ORDER BY phone COLLATE "C" DESC LIMIT 3

SELECT loyalty_points FROM customers GROUP BY ROLLUP (loyalty_points) ORDER BY 1 DESC NULLS LAST LIMIT 3

SELECT customer_id, national_id FROM customers GROUP BY GROUPING SETS ((customer_id), (national_id)) ORDER BY 1 DESC LIMIT 3

SELECT DISTINCT ON (street) street, city FROM customers ORDER BY street DESC

-- group: VALUES and scalar subqueries
-- Subqueries where a value is expected.

VALUES ((SELECT national_id FROM customers ORDER BY customer_id DESC LIMIT 1))

VALUES (1), ((SELECT count(*) FROM customers WHERE region = 'south'))

SELECT * FROM (VALUES (1)) v, customers WHERE customer_id = ${C2.customer_id}

SELECT * FROM ROWS FROM (generate_series(1, 1)) g, customers c WHERE c.customer_id = ${C2.customer_id}

SELECT (SELECT max(amount) FROM commissions), (SELECT max(target_amount) FROM sales_targets)

-- group: LIKE and comparisons on hidden and masked columns
-- Predicates as oracles: they must only ever see the masked value.

SELECT customer_id FROM customers WHERE national_id LIKE 'CNRY%'

SELECT customer_id, national_id FROM customers WHERE national_id ILIKE '%c1%'

SELECT customer_id, street FROM customers WHERE street LIKE '%CNRY%'

SELECT customer_id FROM customers WHERE phone SIMILAR TO '%5550'

SELECT customer_id, phone FROM customers WHERE phone > 'CNRY_C1' AND phone < 'CNRY_C2'

SELECT customer_id FROM customers WHERE annual_income > 61000000

SELECT customer_id, loyalty_points FROM customers WHERE loyalty_points BETWEEN 7319001 AND 7319999

SELECT customer_id, birth_date FROM customers WHERE birth_date < '1911-01-01'

SELECT t.ticket_id, t.body FROM support_tickets t WHERE t.body LIKE 'Ticket body padding:CNRY%'

SELECT order_id, shipping_street FROM orders WHERE shipping_street ~ '^CNRY'

SELECT customer_id FROM customers WHERE postal_code = 'PC' || 'CNRY_C1_postal_code'

-- group: string functions rebuilding masked values
-- substr/left/right/overlay/regexp on partial masks, encodings.

SELECT substr(phone, 1, 40), left(phone, 40), right(phone, 40) FROM customers

SELECT substr(postal_code, 3), overlay(postal_code placing 'x' from 1 for 0) FROM customers

SELECT regexp_replace(email, '(.)', '\1', 'g'), regexp_replace(street, '^', '>') FROM customers

SELECT regexp_matches(street, '(.*)') FROM customers

SELECT split_part(email, '@', 1), md5(email) FROM customers

SELECT length(national_id), octet_length(street), position('C' in phone) FROM customers

SELECT translate(phone, '*', ''), replace(postal_code, '*', '') FROM customers

SELECT reverse(national_id), reverse(street), reverse(phone) FROM customers

SELECT encode(convert_to(street, 'UTF8'), 'hex'), encode(street::bytea, 'base64') FROM customers

SELECT ascii(substr(phone, 5, 1)), chr(ascii(substr(phone, 5, 1))) FROM customers

SELECT string_to_array(body, ' '), left(body, 200), substring(body from 21) FROM support_tickets

SELECT starts_with(national_id, 'CNRY'), strpos(street, 'CNRY') FROM customers

SELECT to_char(birth_date, 'YYYY-MM-DD'), extract(month from birth_date), extract(day from birth_date), birth_date FROM customers

SELECT annual_income::text, annual_income % 25000, loyalty_points % 1000, annual_income - floor(annual_income) FROM customers

SELECT width_bucket(annual_income, 0, 100000000, 100000000) FROM customers

SELECT upper(shipping_street), lower(shipping_postal_code), initcap(shipping_name) FROM orders

SELECT quote_literal(street), quote_ident(phone), format('%I %L', postal_code, email) FROM customers

SELECT string_agg(substr(phone, i, 1), '') FROM customers, generate_series(1, 30) i GROUP BY customer_id

-- group: JSON paths and regular expressions
-- Values inspected through jsonb_path and regexp functions.

SELECT jsonb_path_query(to_jsonb(c), '$.national_id') FROM customers c

SELECT customer_id FROM customers c WHERE jsonb_path_exists(to_jsonb(c), '$.street ? (@ like_regex "CNRY")')

SELECT to_jsonb(c) -> 'phone', to_jsonb(c) ->> 'postal_code' FROM customers c

SELECT jsonb_path_query_array(jsonb_agg(c), '$[*].national_id') FROM customers c

SELECT regexp_substr(street, 'CNRY.*'), regexp_count(national_id, '.'), regexp_like(phone, 'CNRY') FROM customers

SELECT regexp_split_to_table(string_agg(body, ' '), ' ') FROM support_tickets

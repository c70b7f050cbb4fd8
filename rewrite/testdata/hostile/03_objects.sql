-- Hostile queries, part 3: reaching protected data through objects other
-- than the tables: views and materialized views, functions and operators a
-- superuser created, built-ins that run SQL text or read files, catalog
-- views that hold values, and the pseudonyms.

-- group: views and materialized views
-- Superuser-created views over protected tables (see hostileViews).

SELECT * FROM v_customers

SELECT * FROM mv_customers

SELECT * FROM v_sb_customers

SELECT * FROM v_invoker_customers

SELECT * FROM v_nested

SELECT * FROM v_func

SELECT * FROM v_stats WHERE tablename = 'customers'

SELECT * FROM customers_copy

SELECT * FROM public.v_customers v WHERE v.customer_id = ${C2.customer_id}

SELECT * FROM customers c JOIN v_customers v USING (customer_id)

REFRESH MATERIALIZED VIEW mv_customers

-- group: functions that run SQL, read files or change settings
-- Built-ins outside the allowlist, and user-defined functions.

SELECT query_to_xml('select * from customers', true, false, '')

SELECT pg_catalog.query_to_xml('select national_id from public.customers', true, false, '')

SELECT "query_to_xml"('select first_name from customers where region = ''south''', true, true, '')

SELECT table_to_xml('customers', true, false, '')

SELECT cursor_to_xml('c', 10, true, false, '')

SELECT database_to_xml(true, false, '')

SELECT * FROM ts_stat('SELECT to_tsvector(national_id) FROM customers')

SELECT pg_read_file('/etc/passwd')

SELECT pg_read_binary_file('postgresql.conf')

SELECT pg_ls_dir('.')

SELECT lo_import('/etc/passwd')

SELECT set_config('search_path', 'shadow, public', false)

SELECT set_config('role', 'dana', false)

SELECT current_setting('search_path'), current_setting('is_superuser')

SELECT leak_fn()

SELECT public.leak_fn()

SELECT * FROM leak_rows()

SELECT initcap(1)

SELECT leak_notice(national_id) FROM customers

SELECT * FROM customers WHERE leak_notice(national_id)

SELECT * FROM customers WHERE national_id === 'x'

SELECT * FROM customers WHERE street OPERATOR(public.===) 'x'

SELECT * FROM customers WHERE first_name OPERATOR(pg_catalog.=) '${C2.first_name}'

SELECT pg_stat_get_backend_activity(1)

SELECT * FROM pg_catalog.pg_stat_get_activity(NULL)

SELECT * FROM dblink('dbname=postgres', 'select 1') AS t(x int)

SELECT currtid2('customers', '(0,1)')

SELECT xmlagg(xmlelement(name n, national_id)) FROM customers

SELECT pg_notify('leak_channel', national_id) FROM customers

SELECT pg_get_viewdef('v_customers'), pg_relation_size('customers')

-- group: catalog views
-- Catalogs that hold values of protected columns or other sessions' SQL.

SELECT * FROM pg_stats WHERE tablename = 'customers'

SELECT most_common_vals::text, histogram_bounds::text FROM pg_catalog.pg_stats WHERE attname = 'national_id'

SELECT * FROM "pg_stats"

SELECT * FROM pg_stats_ext

SELECT * FROM pg_stats_ext_exprs

SELECT * FROM pg_statistic

SELECT * FROM pg_statistic_ext_data

SELECT query FROM pg_stat_activity

SELECT * FROM pg_catalog.pg_stat_activity

SELECT * FROM information_schema.columns WHERE table_name = 'customers'

SELECT relname, reltuples FROM pg_class WHERE relname = 'customers'

SELECT attname, attstattarget FROM pg_attribute WHERE attrelid = 'customers'::regclass

SELECT * FROM pg_prepared_statements

SELECT * FROM pg_cursors

SELECT * FROM pg_largeobject

SELECT stxname, stxkeys FROM pg_statistic_ext

-- group: pseudonym reversal
-- For the anonymized and disclosure roles: recompute or join pseudonyms
-- against guessed values.

SELECT first_name, customer_number FROM customers WHERE first_name = '${C1.first_name}'

SELECT count(*) FROM customers WHERE customer_number = '${C1.customer_number}'

SELECT pgcloak.pseudonym('${C1.first_name}')

SELECT pgcloak.pseudonym(${C1.customer_id}::bigint, 63)

SELECT c.first_name, o.shipping_name, c.email FROM customers c JOIN orders o USING (customer_id)

SELECT "pgcloak"."pseudonym"(first_name) FROM customers

SELECT pgcloak.pseudonym_bytes('\x00'::bytea)

SELECT first_name FROM customers EXCEPT SELECT 'ps_' || md5('x')

SELECT c.last_name, k.last_name FROM customers c JOIN contacts k ON k.last_name = c.last_name

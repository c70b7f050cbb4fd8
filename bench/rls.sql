-- The sales_rep policy of examples/crm/rules.yaml written natively in
-- PostgreSQL, for bench/crm.sh to compare pgcloak with: row-level security
-- on the base tables for the row filters (a rep's region, and the tables
-- linked to customers through their customer), plus security_barrier views
-- that apply the masks of the standard profile (identity shown, personal
-- masked, sensitive hidden; customers.phone shown to reps).
--
-- Run it as a superuser in a database loaded by crmgen (the sample logins
-- exist). A sales rep connects as their own login (alice) with search_path
-- crm_rls, where the views have the tables' names, so the same SQL runs as
-- through pgcloak. The views belong to rls_owner, a role without BYPASSRLS:
-- the policies below apply to it, and decide by the login that runs the
-- query (current_user inside a view is the caller), whose region comes from
-- sales_reps, as the attribute query of erin in rules.yaml does.
-- Confidential tables (commissions, sales_targets) get no view.

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rls_owner') THEN
        CREATE ROLE rls_owner NOLOGIN;
    END IF;
END $$;

CREATE SCHEMA crm_rls;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO rls_owner;

-- Row filters.
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_opt_outs ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE order_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE support_tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;

CREATE POLICY sales_rep ON customers FOR SELECT TO rls_owner
    USING (region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user));
CREATE POLICY sales_rep ON customer_opt_outs FOR SELECT TO rls_owner
    USING (EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = customer_opt_outs.customer_id
                   AND c.region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user)));
CREATE POLICY sales_rep ON orders FOR SELECT TO rls_owner
    USING (EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = orders.customer_id
                   AND c.region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user)));
CREATE POLICY sales_rep ON order_lines FOR SELECT TO rls_owner
    USING (EXISTS (SELECT 1 FROM orders o JOIN customers c ON c.customer_id = o.customer_id
                   WHERE o.order_id = order_lines.order_id AND c.region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user)));
CREATE POLICY sales_rep ON support_tickets FOR SELECT TO rls_owner
    USING (EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = support_tickets.customer_id
                   AND c.region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user)));
CREATE POLICY sales_rep ON campaign_members FOR SELECT TO rls_owner
    USING (EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = campaign_members.customer_id
                   AND c.region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user)));
CREATE POLICY sales_rep ON accounts FOR SELECT TO rls_owner
    USING (region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user));
CREATE POLICY sales_rep ON contacts FOR SELECT TO rls_owner
    USING (account_id IN (SELECT account_id FROM accounts WHERE region = (SELECT r.region FROM public.sales_reps r WHERE r.login = current_user)));

-- Masks. security_barrier: the outer query's leaky predicates run only on
-- rows the view returns; leakproof ones (customer_id = $1) are still pushed
-- down to the index.
CREATE VIEW crm_rls.customers WITH (security_barrier) AS
SELECT customer_id, customer_number, first_name, last_name, email,
       phone,                                                          -- reps call their customers
       date_trunc('year', birth_date)::date AS birth_date,             -- birth_year
       CASE WHEN gender IS NULL THEN NULL ELSE '***' END::text AS gender,
       (floor(annual_income / 25000) * 25000)::numeric(12,2) AS annual_income,    -- income_band
       CASE WHEN street IS NULL THEN NULL ELSE '(street withheld)' END::text AS street,
       CASE WHEN city IS NULL THEN NULL ELSE '***' END::text AS city,
       CASE WHEN length(postal_code) <= 2 THEN repeat('*', length(postal_code))
            ELSE left(postal_code, 2) || repeat('*', length(postal_code) - 2) END::text AS postal_code,
       region, segment,
       (floor(loyalty_points / 1000.0) * 1000)::integer AS loyalty_points,        -- points_band
       CASE WHEN preferred_channel IS NULL THEN NULL ELSE '***' END::text AS preferred_channel,
       NULL::text AS national_id, NULL::text AS religion, NULL::text AS ethnicity, NULL::text AS health_notes,
       rep_id, created_at
FROM public.customers;

CREATE VIEW crm_rls.customer_opt_outs WITH (security_barrier) AS
SELECT customer_id, purpose, opted_out_at FROM public.customer_opt_outs;

CREATE VIEW crm_rls.orders WITH (security_barrier) AS
SELECT order_id, customer_id, ordered_at, status, total_amount, shipping_name,
       CASE WHEN shipping_street IS NULL THEN NULL ELSE '(street withheld)' END::text AS shipping_street,
       CASE WHEN shipping_city IS NULL THEN NULL ELSE '***' END::text AS shipping_city,
       CASE WHEN length(shipping_postal_code) <= 2 THEN repeat('*', length(shipping_postal_code))
            ELSE left(shipping_postal_code, 2) || repeat('*', length(shipping_postal_code) - 2) END::text AS shipping_postal_code,
       shipping_region
FROM public.orders;

CREATE VIEW crm_rls.order_lines WITH (security_barrier) AS
SELECT order_id, line_no, product_sku, quantity, unit_price FROM public.order_lines;

CREATE VIEW crm_rls.support_tickets WITH (security_barrier) AS
SELECT ticket_id, customer_id, opened_at, channel, status, subject, left(body, 20) || ' […]' AS body
FROM public.support_tickets;

CREATE VIEW crm_rls.campaign_members WITH (security_barrier) AS
SELECT campaign_id, customer_id, added_at, CASE WHEN responded IS NULL THEN NULL ELSE false END AS responded
FROM public.campaign_members;

CREATE VIEW crm_rls.campaigns WITH (security_barrier) AS
SELECT campaign_id, name, channel, starts_on, budget FROM public.campaigns;

CREATE VIEW crm_rls.accounts WITH (security_barrier) AS
SELECT account_id, name, industry, region, annual_revenue, rep_id FROM public.accounts;

CREATE VIEW crm_rls.contacts WITH (security_barrier) AS
SELECT contact_id, account_id, first_name, last_name,
       CASE WHEN job_title IS NULL THEN NULL ELSE '***' END::text AS job_title,
       email,
       CASE WHEN length(phone) <= 4 THEN repeat('*', length(phone))
            ELSE repeat('*', length(phone) - 4) || right(phone, 4) END::text AS phone
FROM public.contacts;

CREATE VIEW crm_rls.sales_reps WITH (security_barrier) AS
SELECT rep_id, login, full_name, email, region FROM public.sales_reps;

DO $$
DECLARE v text;
BEGIN
    FOR v IN SELECT viewname FROM pg_views WHERE schemaname = 'crm_rls' LOOP
        EXECUTE format('ALTER VIEW crm_rls.%I OWNER TO rls_owner', v);
    END LOOP;
END $$;

-- The sales reps read through the views only: no privilege on the base
-- tables here (RLS would show them nothing anyway: no policy names them).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM alice, bob, erin;
GRANT USAGE ON SCHEMA crm_rls TO alice, bob, erin;
GRANT SELECT ON ALL TABLES IN SCHEMA crm_rls TO alice, bob, erin;
DO $$ BEGIN
    EXECUTE format('ALTER ROLE alice IN DATABASE %I SET search_path = crm_rls', current_database());
    EXECUTE format('ALTER ROLE bob IN DATABASE %I SET search_path = crm_rls', current_database());
    EXECUTE format('ALTER ROLE erin IN DATABASE %I SET search_path = crm_rls', current_database());
END $$;
ANALYZE;

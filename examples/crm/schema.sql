-- pgcloak sample CRM: a B2C and B2B CRM whose data subjects are customers.
-- Every column of every table is classed in rules.yaml next to this file.
-- crm.Load drops and recreates these tables; the login roles are created
-- only if they do not exist yet (roles belong to the whole cluster).

CREATE TABLE sales_reps (
    rep_id      integer PRIMARY KEY,
    login       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    email       text NOT NULL,
    region      text NOT NULL CHECK (region IN ('north', 'south', 'east', 'west'))
);

CREATE TABLE customers (
    customer_id     bigint PRIMARY KEY,
    customer_number text NOT NULL UNIQUE,       -- the account number printed on invoices
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    email           text,
    phone           text,
    birth_date      date,
    gender          text,
    annual_income   numeric(12,2),
    street          text,
    city            text,
    postal_code     text,
    region          text NOT NULL CHECK (region IN ('north', 'south', 'east', 'west')),
    segment         text NOT NULL,              -- consumer, premium, small_business
    loyalty_points  integer NOT NULL DEFAULT 0, -- a shopping habit
    preferred_channel text,                     -- email, phone, mail, none
    national_id     text,
    religion        text,
    ethnicity       text,
    health_notes    text,
    rep_id          integer REFERENCES sales_reps,
    created_at      timestamptz NOT NULL
);
CREATE INDEX ON customers (region);

-- One row per (customer, purpose) the customer opted out of.
CREATE TABLE customer_opt_outs (
    customer_id  bigint NOT NULL REFERENCES customers ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose IN ('direct_marketing', 'third_party_disclosure',
                                                  'automated_decision', 'sensitive_data')),
    opted_out_at timestamptz NOT NULL,
    PRIMARY KEY (customer_id, purpose)
);

-- B2B: companies and the people we deal with there.
CREATE TABLE accounts (
    account_id     integer PRIMARY KEY,
    name           text NOT NULL,
    industry       text NOT NULL,
    region         text NOT NULL CHECK (region IN ('north', 'south', 'east', 'west')),
    annual_revenue numeric(14,2),
    rep_id         integer REFERENCES sales_reps
);

CREATE TABLE contacts (
    contact_id  integer PRIMARY KEY,
    account_id  integer NOT NULL REFERENCES accounts,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    job_title   text,
    email       text,
    phone       text
);

CREATE TABLE orders (
    order_id             bigint PRIMARY KEY,
    customer_id          bigint NOT NULL REFERENCES customers,
    ordered_at           timestamptz NOT NULL,
    status               text NOT NULL,          -- placed, shipped, delivered, returned
    total_amount         numeric(12,2) NOT NULL,
    shipping_name        text NOT NULL,
    shipping_street      text NOT NULL,
    shipping_city        text NOT NULL,
    shipping_postal_code text NOT NULL,
    shipping_region      text NOT NULL
);
CREATE INDEX ON orders (customer_id);

CREATE TABLE order_lines (
    order_id    bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
    line_no     integer NOT NULL,
    product_sku text NOT NULL,
    quantity    integer NOT NULL,
    unit_price  numeric(10,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE support_tickets (
    ticket_id   bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    opened_at   timestamptz NOT NULL,
    channel     text NOT NULL,
    status      text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL
);
CREATE INDEX ON support_tickets (customer_id);

-- Business secrets: no data subject, readable only by the roles that name them.
CREATE TABLE commissions (
    commission_id integer PRIMARY KEY,
    rep_id        integer NOT NULL REFERENCES sales_reps,
    period        date NOT NULL,
    amount        numeric(10,2) NOT NULL
);

CREATE TABLE sales_targets (
    rep_id        integer NOT NULL REFERENCES sales_reps,
    period        date NOT NULL,
    target_amount numeric(12,2) NOT NULL,
    PRIMARY KEY (rep_id, period)
);

CREATE TABLE campaigns (
    campaign_id integer PRIMARY KEY,
    name        text NOT NULL,
    channel     text NOT NULL,
    starts_on   date NOT NULL,
    budget      numeric(12,2) NOT NULL,
    manager     text NOT NULL               -- login of the marketer who runs it
);

CREATE TABLE campaign_members (
    campaign_id integer NOT NULL REFERENCES campaigns,
    customer_id bigint NOT NULL REFERENCES customers,
    added_at    timestamptz NOT NULL,
    responded   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (campaign_id, customer_id)
);

-- The sample principals log in as themselves (pgcloak relays authentication
-- to PostgreSQL); see docs/rules.md for who is who. The password of all of
-- them is the demo password below: a sample, not a deployment.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['alice', 'bob', 'erin', 'sam', 'connie', 'walt', 'victor',
                             'mia', 'ana', 'dex', 'petra', 'dana', 'crm_app'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, 'pgcloak-demo');
        END IF;
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public
    TO alice, bob, erin, sam, connie, walt, victor, mia, ana, dex, petra, dana, crm_app;

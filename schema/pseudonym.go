package schema

// pseudonymSQL creates the pseudonym functions and their key table in
// schema pgcloak. Setup runs it, then stores the key with a bind
// parameter, never in SQL text.
//
// The pseudonym is sha256(k || sha256(k || value)): keyed, so it cannot
// be recomputed from a guessed value without the key, and deterministic, so
// equal values give equal pseudonyms and joins and distinct counts still
// work. k is the stored key for scope "", and sha256(key || scope) for a
// scope (a role: rules.Role.PseudonymScope), so that the pseudonyms of two
// roles do not match. The functions are SECURITY DEFINER so that sessions can
// call them while the key table stays unreadable to them (restricted roles
// may not call them at all: they are not built-in functions).
const pseudonymSQL = `
CREATE SCHEMA IF NOT EXISTS pgcloak;
CREATE TABLE IF NOT EXISTS pgcloak.pseudonym_key (
	id boolean PRIMARY KEY DEFAULT true CHECK (id),
	key bytea NOT NULL CHECK (length(key) >= 16)
);
REVOKE ALL ON pgcloak.pseudonym_key FROM PUBLIC;
CREATE OR REPLACE FUNCTION pgcloak.pseudonym_bytes(value bytea) RETURNS bytea
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT sha256(k.key || sha256(k.key || value)) FROM pgcloak.pseudonym_key k $$;
CREATE OR REPLACE FUNCTION pgcloak.pseudonym_bytes(value bytea, scope text) RETURNS bytea
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT sha256(s.key || sha256(s.key || value))
	      FROM (SELECT CASE WHEN scope = '' THEN k.key ELSE sha256(k.key || convert_to(scope, 'UTF8')) END AS key
	            FROM pgcloak.pseudonym_key k) s $$;
CREATE OR REPLACE FUNCTION pgcloak.pseudonym(value text) RETURNS text
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT 'ps_' || left(encode(pgcloak.pseudonym_bytes(convert_to(value, 'UTF8')), 'hex'), 20) $$;
CREATE OR REPLACE FUNCTION pgcloak.pseudonym(value text, scope text) RETURNS text
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT 'ps_' || left(encode(pgcloak.pseudonym_bytes(convert_to(value, 'UTF8'), scope), 'hex'), 20) $$;
CREATE OR REPLACE FUNCTION pgcloak.pseudonym(value bigint, bits integer) RETURNS bigint
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT ('x' || left(encode(pgcloak.pseudonym_bytes(convert_to(value::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint
	              & (9223372036854775807 >> (63 - bits)) $$;
CREATE OR REPLACE FUNCTION pgcloak.pseudonym(value bigint, bits integer, scope text) RETURNS bigint
	LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT ('x' || left(encode(pgcloak.pseudonym_bytes(convert_to(value::text, 'UTF8'), scope), 'hex'), 16))::bit(64)::bigint
	              & (9223372036854775807 >> (63 - bits)) $$;
REVOKE ALL ON FUNCTION pgcloak.pseudonym_bytes(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION pgcloak.pseudonym_bytes(bytea, text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgcloak TO PUBLIC;
`

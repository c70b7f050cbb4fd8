-- Hostile queries, part 7: the session settings every restricted role may
-- change (docs/rules.md, "Session settings"), with payloads in their
-- values, and set_config where it is not allowed.

-- group: session settings
-- A value is one constant, never a statement; set_config only with
-- constants, in a select list, of a session setting; client_min_messages
-- not below notice; guarded settings only to what the guard requires.

SET application_name = 'x''; SELECT national_id, first_name, street FROM customers --'

SET application_name = E'x\'; SELECT national_id FROM customers --'

SET application_name = 'x'; SELECT national_id, street FROM customers

SET TIME ZONE 'UTC''; SELECT national_id FROM customers --'

SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE; SELECT national_id, street, religion FROM customers

SET client_min_messages TO warning; SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE; SELECT * FROM customers

SET client_min_messages = debug5; SELECT * FROM customers WHERE leak_notice(national_id)

SET client_min_messages = log; SELECT national_id FROM customers

SELECT set_config('client_min_messages', 'debug1', false); SELECT national_id FROM customers

SET extra_float_digits = 3; SELECT annual_income::float8 FROM customers

SET bytea_output = 'escape'; SELECT convert_to(national_id, 'UTF8') FROM customers

SELECT set_config('application_name', 'a', false), national_id, religion FROM customers

SELECT set_config('application_name', national_id, false) FROM customers

SELECT set_config('search_path', 'shadow, public', false); SELECT * FROM customers

SELECT pg_catalog.set_config('search_path', 'shadow', true), * FROM customers

SELECT * FROM customers WHERE set_config('application_name', national_id, false) IS NOT NULL

SELECT current_setting('application_name') FROM customers WHERE set_config('application_name', 'seen', false) = 'seen' AND national_id LIKE '%'

SELECT (SELECT set_config('application_name', c.national_id, false)) FROM customers c

SET standard_conforming_strings = on; SELECT 'a\' , national_id FROM customers --'

SELECT set_config('standard_conforming_strings', 'off', false); SELECT 'a\' , national_id FROM customers --'

SET NAMES 'mskanji'; SELECT national_id FROM customers

SET client_encoding = 'win936'; SELECT national_id FROM customers

RESET ALL; SELECT * FROM customers

SET SESSION AUTHORIZATION DEFAULT; SELECT * FROM customers

-- Hostile queries, part 5: the text itself: comments, odd whitespace,
-- dollar quoting, escape and Unicode strings, identifiers in every case,
-- numeric literals newer parsers read differently.

-- group: comments, whitespace and quoting
-- The parser pgcloak uses must read the text as the server does.

SELECT/**/*/**/FROM/**/customers

SELECT * FROM /* nested /* comment */ still a comment */ customers

SELECT * FROM -- a line comment
customers

SELECT*FROM"customers"

SELECT	*	FROM	customers	WHERE	region	<>	'north'

SELECT $$national_id$$, * FROM customers

SELECT $x$ ' $x$, national_id FROM customers

SELECT $a$ $b$ $a$ AS a, street FROM customers

SELECT E'\'', national_id FROM customers

SELECT E'\\', * FROM customers

SELECT U&'\0041', national_id FROM customers

SELECT U&'!0041' UESCAPE '!', street FROM customers

SELECT 'a'
'b' AS x, national_id FROM customers

SELECT * FROM customers WHERE first_name = U&'\0043NRY_C2_first_name'

SELECT * FROM customers WHERE national_id = E'\x43NRY_C1_national_id4321'

SELECT ''''||national_id FROM customers

SELECT 1 AS "FROM customers", national_id FROM customers

SELECT "national_id" FROM "customers"

SELECT NATIONAL_ID, Street FROM CUSTOMERS

SELECT * FROM customers AS "Customers"

SELECT 0x1F, national_id FROM customers

SELECT 1_000, street FROM customers

SELECT 1abc FROM customers

SELECT * FROM customers WHERE customer_id = ${C2.customer_id}e0

SELECT * FROM customers WHERE customer_id = ${C2.customer_id}::numeric

SELECT national_id FROM customers -- ; SELECT 1

SELECT national_id FROM customers /* ; SELECT 1 */

SELECT 'x' -- ' , national_id FROM customers

SELECT $$ $$ , street FROM customers WHERE $$x$$ = 'x'

SELECT * FROM customers WHERE region = e'south'

SELECT * FROM customers WHERE region = U&'sout\0068'

SELECT b'0101', x'1F', national_id FROM customers

-- group: child tables and system columns
-- Inheritance children of a protected table, and columns the policy
-- subquery does not carry.

SELECT * FROM customers WHERE customer_id = ${C9.customer_id}

SELECT * FROM customers_vip WHERE region <> 'north'

SELECT tableoid::regclass, * FROM customers

SELECT ctid, xmin, * FROM customers

SELECT c.ctid FROM customers c WHERE c.customer_id = ${C2.customer_id}

SELECT customers.tableoid FROM customers

SELECT * FROM customers WHERE ctid = '(0,1)'

-- pgbench custom script for bench/crm.sh: what a sales rep's CRM screen
-- runs when it opens a customer: the customer by id, then the customer's
-- last orders (a short join). Run with -D customers=N (the number of
-- customers loaded). A north sales rep (alice) finds about 30% of the ids;
-- the others come back empty, as a lookup outside her region does.
\set cid random(1, :customers)
SELECT customer_id, customer_number, first_name, last_name, email, phone, city, segment
  FROM customers WHERE customer_id = :cid;
SELECT o.order_id, o.ordered_at, o.status, o.total_amount
  FROM orders o JOIN customers c ON c.customer_id = o.customer_id
  WHERE c.customer_id = :cid ORDER BY o.ordered_at DESC LIMIT 10;

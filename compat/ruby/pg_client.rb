# ruby-pg with its defaults: PG.connect, exec_params (the extended
# protocol), autocommit.
require 'pg'
require_relative 'common'

db = PG.connect(URL)
COLS = %w[customer_id customer_number first_name last_name email phone region segment created_at].freeze
INSERT = "INSERT INTO customers (#{COLS.join(', ')}) VALUES (#{(1..COLS.size).map { |i| "$#{i}" }.join(', ')})".freeze
values = ->(c) { COLS.map { |k| c[k.to_sym] } }
rows = ->(sql, *args) { db.exec_params(sql, args).values }

run('list') { rows.call('SELECT customer_id, first_name, last_name, email, city, postal_code FROM customers WHERE segment = $1 ORDER BY customer_id DESC LIMIT 5 OFFSET 2', 'premium') }
run('get') { rows.call('SELECT customer_id, first_name, last_name, email, phone, postal_code FROM customers WHERE customer_id = $1', CUSTOMER) }
run('count') { rows.call('SELECT count(*) FROM customers WHERE segment = $1', 'premium') }
run('join') { rows.call('SELECT o.order_id, o.status, c.last_name FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.customer_id = $1 ORDER BY o.order_id', CUSTOMER) }
run('aggregate') { rows.call('SELECT c.customer_id, c.last_name, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.segment = $1 GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 5', 'premium') }
run('update') { rows.call('UPDATE customers SET phone = $1 WHERE customer_id = $2', NEW_PHONE, CUSTOMER) }
run('create') { rows.call("#{INSERT} RETURNING customer_id", *values.call(new_customer(1, 'Create'))) }
run('bulk') do
  db.transaction do |tx|
    [2, 3, 4].each { |n| tx.exec_params(INSERT, values.call(new_customer(n, 'Bulk'))) }
  end
  []
end
run('upsert') { rows.call("#{INSERT} ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone", *values.call(new_customer(8, 'Fixture', phone: '+1 555 0108'))) }
run('delete') { rows.call('DELETE FROM customers WHERE customer_id = $1', BASE + 9) }
run('transaction') do
  inner = 'ok'
  db.transaction do |tx|
    tx.exec('SAVEPOINT s')
    begin
      tx.exec_params(INSERT, values.call(new_customer(5, 'South', region: 'south')))
    rescue PG::Error => e
      inner = sqlstate(e)
      tx.exec('ROLLBACK TO SAVEPOINT s')
    end
    tx.exec_params(INSERT, values.call(new_customer(6, 'After')))
  end
  [[inner]]
end
db.close

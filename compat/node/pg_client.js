// node-postgres (pg) with its defaults: a Client, parameterized queries
// (the extended protocol), autocommit.
'use strict';

const { Client } = require('pg');
const { URL, CUSTOMER, BASE, NEW_PHONE, newCustomer, run, sqlstate } = require('./common');

const COLS = ['customer_id', 'customer_number', 'first_name', 'last_name', 'email', 'phone', 'region', 'segment', 'created_at'];
const INSERT = `INSERT INTO customers (${COLS.join(', ')}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`;
const values = (c) => COLS.map((k) => c[k]);

async function main() {
  const db = new Client({ connectionString: URL });
  await db.connect();
  const rows = async (sql, ...args) => (await db.query({ text: sql, values: args, rowMode: 'array' })).rows;
  await run('list', () => rows('SELECT customer_id, first_name, last_name, email, city, postal_code FROM customers WHERE segment = $1 ORDER BY customer_id DESC LIMIT 5 OFFSET 2', 'premium'));
  await run('get', () => rows('SELECT customer_id, first_name, last_name, email, phone, postal_code FROM customers WHERE customer_id = $1', CUSTOMER));
  await run('count', () => rows('SELECT count(*) FROM customers WHERE segment = $1', 'premium'));
  await run('join', () => rows('SELECT o.order_id, o.status, c.last_name FROM orders o JOIN customers c ON c.customer_id = o.customer_id WHERE o.customer_id = $1 ORDER BY o.order_id', CUSTOMER));
  await run('aggregate', () => rows('SELECT c.customer_id, c.last_name, count(o.order_id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id WHERE c.segment = $1 GROUP BY c.customer_id ORDER BY c.customer_id LIMIT 5', 'premium'));
  await run('update', () => rows('UPDATE customers SET phone = $1 WHERE customer_id = $2', NEW_PHONE, CUSTOMER));
  await run('create', () => rows(`${INSERT} RETURNING customer_id`, ...values(newCustomer(1, 'Create'))));
  await run('bulk', async () => {
    const cs = [2, 3, 4].map((n) => newCustomer(n, 'Bulk'));
    const ph = cs.map((_, i) => `(${COLS.map((__, j) => `$${i * COLS.length + j + 1}`).join(', ')})`).join(', ');
    return rows(`INSERT INTO customers (${COLS.join(', ')}) VALUES ${ph}`, ...cs.flatMap(values));
  });
  await run('upsert', () => rows(`${INSERT} ON CONFLICT (customer_id) DO UPDATE SET phone = EXCLUDED.phone`, ...values(newCustomer(8, 'Fixture', 'north', '+1 555 0108'))));
  await run('delete', () => rows('DELETE FROM customers WHERE customer_id = $1', BASE + 9));
  await run('transaction', async () => {
    await db.query('BEGIN');
    try {
      await db.query('SAVEPOINT s');
      let inner = 'ok';
      try {
        await db.query(INSERT, values(newCustomer(5, 'South', 'south')));
      } catch (e) {
        inner = sqlstate(e);
        await db.query('ROLLBACK TO SAVEPOINT s');
      }
      await db.query(INSERT, values(newCustomer(6, 'After')));
      await db.query('COMMIT');
      return [[inner]];
    } catch (e) {
      await db.query('ROLLBACK');
      throw e;
    }
  });
  await db.end();
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });

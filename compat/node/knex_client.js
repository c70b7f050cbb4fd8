// knex with its defaults (the pg client, a pool): the query builder,
// returning('*') on insert, insert(array), onConflict().merge(), and a
// nested transaction (a savepoint).
'use strict';

const knex = require('knex');
const { URL, CUSTOMER, BASE, NEW_PHONE, newCustomer, run, sqlstate } = require('./common');

async function main() {
  const db = knex({ client: 'pg', connection: URL });
  const arr = (objs, ...cols) => objs.map((o) => cols.map((c) => o[c]));
  await run('list', async () => arr(await db('customers').where({ segment: 'premium' }).orderBy('customer_id', 'desc').limit(5).offset(2),
    'customer_id', 'first_name', 'last_name', 'email', 'city', 'postal_code'));
  await run('get', async () => arr([await db('customers').where({ customer_id: CUSTOMER }).first()],
    'customer_id', 'first_name', 'last_name', 'email', 'phone', 'postal_code'));
  await run('count', async () => [[(await db('customers').where({ segment: 'premium' }).count({ n: '*' }).first()).n]]);
  await run('join', async () => arr(await db('orders as o').join('customers as c', 'c.customer_id', 'o.customer_id')
    .where('o.customer_id', CUSTOMER).orderBy('o.order_id').select('o.order_id', 'o.status', 'c.last_name'),
  'order_id', 'status', 'last_name'));
  await run('aggregate', async () => arr(await db('customers as c').leftJoin('orders as o', 'o.customer_id', 'c.customer_id')
    .where('c.segment', 'premium').groupBy('c.customer_id').orderBy('c.customer_id').limit(5)
    .select('c.customer_id', 'c.last_name').count({ n: 'o.order_id' }), 'customer_id', 'last_name', 'n'));
  await run('update', async () => { await db('customers').where({ customer_id: CUSTOMER }).update({ phone: NEW_PHONE }); return []; });
  await run('create', async () => arr(await db('customers').insert(newCustomer(1, 'Create')).returning('*'), 'customer_id'));
  await run('bulk', async () => { await db('customers').insert([2, 3, 4].map((n) => newCustomer(n, 'Bulk'))); return []; });
  await run('upsert', async () => {
    await db('customers').insert(newCustomer(8, 'Fixture', 'north', '+1 555 0108')).onConflict('customer_id').merge(['phone']);
    return [];
  });
  await run('delete', async () => { await db('customers').where({ customer_id: BASE + 9 }).del(); return []; });
  await run('transaction', () => db.transaction(async (trx) => {
    let inner = 'ok';
    try {
      await trx.transaction(async (sp) => { await sp('customers').insert(newCustomer(5, 'South', 'south')); });
    } catch (e) {
      inner = sqlstate(e);
    }
    await trx('customers').insert(newCustomer(6, 'After'));
    return [[inner]];
  }));
  await db.destroy();
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });

// TypeORM 0.3 with its defaults (the postgres driver, a DataSource,
// entities as EntitySchema since the suite runs plain JavaScript):
// repository find/findOneBy/count, query builder joins, save() of a loaded
// entity and of new ones, upsert(), remove() and nested transactions (a
// savepoint) through a QueryRunner.
'use strict';

require('reflect-metadata');
const { DataSource, EntitySchema } = require('typeorm');
const { URL, CUSTOMER, BASE, NEW_PHONE, newCustomer, run, sqlstate } = require('./common');

const text = (nullable = true) => ({ type: 'text', nullable });
const Customer = new EntitySchema({
  name: 'Customer',
  tableName: 'customers',
  columns: {
    customer_id: { type: 'bigint', primary: true },
    customer_number: text(false), first_name: text(false), last_name: text(false), email: text(), phone: text(),
    birth_date: { type: 'date', nullable: true }, gender: text(), annual_income: { type: 'numeric', precision: 12, scale: 2, nullable: true },
    street: text(), city: text(), postal_code: text(), region: text(false), segment: text(false),
    loyalty_points: { type: 'integer', default: 0 }, preferred_channel: text(), national_id: text(), religion: text(),
    ethnicity: text(), health_notes: text(), rep_id: { type: 'integer', nullable: true }, created_at: { type: 'timestamptz' },
  },
  relations: { orders: { type: 'one-to-many', target: 'Order', inverseSide: 'customer' } },
});
const Order = new EntitySchema({
  name: 'Order',
  tableName: 'orders',
  columns: { order_id: { type: 'bigint', primary: true }, customer_id: { type: 'bigint' }, status: text(false) },
  relations: { customer: { type: 'many-to-one', target: 'Customer', joinColumn: { name: 'customer_id' }, inverseSide: 'orders' } },
});

const arr = (objs, ...cols) => objs.map((o) => cols.map((c) => o[c]));

async function main() {
  const ds = new DataSource({ type: 'postgres', url: URL, entities: [Customer, Order] });
  await ds.initialize();
  const customers = ds.getRepository(Customer);
  await run('list', async () => arr(await customers.find({ where: { segment: 'premium' }, order: { customer_id: 'DESC' }, skip: 2, take: 5 }),
    'customer_id', 'first_name', 'last_name', 'email', 'city', 'postal_code'));
  await run('get', async () => arr([await customers.findOneBy({ customer_id: CUSTOMER })], 'customer_id', 'first_name', 'last_name', 'email', 'phone', 'postal_code'));
  await run('count', async () => [[await customers.countBy({ segment: 'premium' })]]);
  await run('join', async () => (await ds.getRepository(Order).find({ where: { customer_id: CUSTOMER }, relations: { customer: true }, order: { order_id: 'ASC' } }))
    .map((o) => [o.order_id, o.status, o.customer.last_name]));
  await run('aggregate', async () => (await customers.createQueryBuilder('c').leftJoin('c.orders', 'o')
    .select('c.customer_id', 'customer_id').addSelect('c.last_name', 'last_name').addSelect('COUNT(o.order_id)', 'n')
    .where('c.segment = :s', { s: 'premium' }).groupBy('c.customer_id').orderBy('c.customer_id').limit(5).getRawMany())
    .map((r) => [r.customer_id, r.last_name, r.n]));
  await run('update', async () => {
    const c = await customers.findOneBy({ customer_id: CUSTOMER });
    c.phone = NEW_PHONE;
    await customers.save(c);
    return [];
  });
  await run('create', async () => [[(await customers.save(customers.create(newCustomer(1, 'Create')))).customer_id]]);
  await run('bulk', async () => { await customers.save([2, 3, 4].map((n) => customers.create(newCustomer(n, 'Bulk')))); return []; });
  await run('upsert', async () => { await customers.upsert(newCustomer(8, 'Fixture', 'north', '+1 555 0108'), ['customer_id']); return []; });
  await run('delete', async () => { await customers.remove(await customers.findOneBy({ customer_id: BASE + 9 })); return []; });
  await run('transaction', async () => {
    const qr = ds.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    try {
      let inner = 'ok';
      await qr.startTransaction(); // nested: a savepoint
      try {
        await qr.manager.insert(Customer, newCustomer(5, 'South', 'south'));
        await qr.commitTransaction();
      } catch (e) {
        inner = sqlstate(e);
        await qr.rollbackTransaction();
      }
      await qr.manager.insert(Customer, newCustomer(6, 'After'));
      await qr.commitTransaction();
      return [[inner]];
    } catch (e) {
      if (qr.isTransactionActive) await qr.rollbackTransaction();
      throw e;
    } finally {
      await qr.release();
    }
  });
  await ds.destroy();
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });

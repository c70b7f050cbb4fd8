// Sequelize 6 with its defaults (the pg dialect, timestamps off for the
// existing tables): findAll, findByPk, count, include, save(), create(),
// bulkCreate(), upsert(), destroy() and a nested transaction (a
// savepoint), both managed.
'use strict';

const { Sequelize, DataTypes } = require('sequelize');
const { URL, CUSTOMER, BASE, NEW_PHONE, newCustomer, run, sqlstate } = require('./common');

const db = new Sequelize(URL, { logging: false });
const T = DataTypes;
const Customer = db.define('Customer', {
  customer_id: { type: T.BIGINT, primaryKey: true },
  customer_number: T.TEXT, first_name: T.TEXT, last_name: T.TEXT, email: T.TEXT, phone: T.TEXT,
  birth_date: T.DATEONLY, gender: T.TEXT, annual_income: T.DECIMAL(12, 2), street: T.TEXT, city: T.TEXT,
  postal_code: T.TEXT, region: T.TEXT, segment: T.TEXT, loyalty_points: { type: T.INTEGER, defaultValue: 0 },
  preferred_channel: T.TEXT, national_id: T.TEXT, religion: T.TEXT, ethnicity: T.TEXT, health_notes: T.TEXT,
  rep_id: T.INTEGER, created_at: T.DATE,
}, { tableName: 'customers', timestamps: false });
const Order = db.define('Order', {
  order_id: { type: T.BIGINT, primaryKey: true }, customer_id: T.BIGINT, status: T.TEXT,
}, { tableName: 'orders', timestamps: false });
Customer.hasMany(Order, { foreignKey: 'customer_id', as: 'orders' });
Order.belongsTo(Customer, { foreignKey: 'customer_id', as: 'customer' });

const arr = (objs, ...cols) => objs.map((o) => cols.map((c) => o.get(c)));

async function main() {
  await run('list', async () => arr(await Customer.findAll({ where: { segment: 'premium' }, order: [['customer_id', 'DESC']], limit: 5, offset: 2 }),
    'customer_id', 'first_name', 'last_name', 'email', 'city', 'postal_code'));
  await run('get', async () => arr([await Customer.findByPk(CUSTOMER)], 'customer_id', 'first_name', 'last_name', 'email', 'phone', 'postal_code'));
  await run('count', async () => [[await Customer.count({ where: { segment: 'premium' } })]]);
  await run('join', async () => (await Order.findAll({ where: { customer_id: CUSTOMER }, include: [{ model: Customer, as: 'customer' }], order: [['order_id', 'ASC']] }))
    .map((o) => [o.order_id, o.status, o.customer.last_name]));
  await run('aggregate', async () => (await Customer.findAll({
    attributes: ['customer_id', 'last_name', [db.fn('COUNT', db.col('orders.order_id')), 'n']],
    include: [{ model: Order, as: 'orders', attributes: [] }],
    where: { segment: 'premium' }, group: ['Customer.customer_id'], order: [['customer_id', 'ASC']], limit: 5, subQuery: false,
  })).map((c) => [c.customer_id, c.last_name, c.get('n')]));
  await run('update', async () => {
    const c = await Customer.findByPk(CUSTOMER);
    c.phone = NEW_PHONE;
    await c.save();
    return [];
  });
  await run('create', async () => [[(await Customer.create(newCustomer(1, 'Create'))).customer_id]]);
  await run('bulk', async () => { await Customer.bulkCreate([2, 3, 4].map((n) => newCustomer(n, 'Bulk'))); return []; });
  await run('upsert', async () => { await Customer.upsert(newCustomer(8, 'Fixture', 'north', '+1 555 0108')); return []; });
  await run('delete', async () => { await (await Customer.findByPk(BASE + 9)).destroy(); return []; });
  await run('transaction', () => db.transaction(async (t) => {
    let inner = 'ok';
    try {
      await db.transaction({ transaction: t }, (sp) => Customer.create(newCustomer(5, 'South', 'south'), { transaction: sp }));
    } catch (e) {
      inner = sqlstate(e);
    }
    await Customer.create(newCustomer(6, 'After'), { transaction: t });
    return [[inner]];
  }));
  await db.close();
}

main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });

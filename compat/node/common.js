// What the node clients share: the connection URL, the operations'
// constants, and one JSON line per operation (see compat_test.go).
'use strict';

const URL = process.env.PGCLOAK_URL;
const CUSTOMER = Number(process.env.COMPAT_CUSTOMER);
const BASE = 9000000;
const NEW_PHONE = '+1 555 0199';
const CREATED = new Date(Date.UTC(2024, 0, 1));

// newCustomer returns the fields of new customer BASE+n.
function newCustomer(n, last, region = 'north', phone = null) {
  return {
    customer_id: BASE + n, customer_number: `CMP-${n}`, first_name: 'Compat', last_name: last,
    email: `${last.toLowerCase()}@example.org`, phone: phone || `+1 555 01${String(n).padStart(2, '0')}`,
    region, segment: 'consumer', created_at: CREATED,
  };
}

function text(v) {
  if (v === null || v === undefined) return null;
  return String(v);
}

function emit(op, rows, err) {
  const out = { op };
  if (err) {
    out.code = sqlstate(err);
    out.error = String(err.message || err).split('\n')[0];
  } else {
    out.rows = (rows || []).map((r) => r.map(text));
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

// sqlstate finds the SQLSTATE of an error, or of the one an ORM wraps.
function sqlstate(e) {
  for (const x of [e, e && e.original, e && e.parent, e && e.driverError, e && e.nativeError]) {
    if (x && typeof x.code === 'string' && /^[0-9A-Z]{5}$/.test(x.code)) return x.code;
  }
  return '';
}

// run runs one operation and prints its answer; an error is an answer too.
async function run(op, fn) {
  try {
    emit(op, await fn());
  } catch (e) {
    process.stderr.write(`${op}: ${e.stack || e}\n`);
    emit(op, null, e);
  }
}

module.exports = { URL, CUSTOMER, BASE, NEW_PHONE, CREATED, newCustomer, run, sqlstate };

// The benchmark's peer: orderd's PlaceOrder as a small Emmett app on PostgreSQL.
//
//   node app.mjs --pg <postgresql://…> --port <p> [--mode command|inline] [--workers N] [--pool N]
//                [--token-sha256 <hex>]
//
// POST /v1/orders takes the JSON body orderd's PlaceOrder takes (bench/place_order.lua sends it),
// validates it as orderd's generated validator and decide() do (required fields, lengths,
// patterns, ranges; ISO 4217 currency, one currency per order, 64-bit totals), computes the line
// totals and the order total in a pure decide function, and appends one OrderPlaced event to a
// new stream `order-<UUIDv7>` in Emmett's PostgreSQL event store (expected version: the stream
// does not exist). The Idempotency-Key travels as the event's metadata (Emmett does not check
// it; orderd records and checks it). With --mode inline an inline projection (Emmett's Pongo
// single-stream projection) writes an order summary document in the append's transaction.
// With --token-sha256 every request must carry `Authorization: Bearer <token>` whose SHA-256
// matches, as orderd's bearer tokens. --workers N runs N processes sharing the port (node:cluster;
// default 2, the benchmark machine's cores), each with a pool of --pool connections (default
// 16 / workers: orderd's pool of 16 over all).
//
// Answers 200 {"order_id":"…","version":"1"}, 400 {"code":3,"message":"…"} on bad input,
// 401 without the token, 500 on a store error. GET /healthz answers 200 once the schema exists.
import cluster from 'node:cluster';
import crypto from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { STREAM_DOES_NOT_EXIST, projections } from '@event-driven-io/emmett';
import { getPostgreSQLEventStore, pongoSingleStreamProjection } from '@event-driven-io/emmett-postgresql';
import pg from 'pg';

const { values: opt } = parseArgs({
  options: {
    pg: { type: 'string' },
    port: { type: 'string', default: '8090' },
    mode: { type: 'string', default: 'command' },
    workers: { type: 'string', default: '2' },
    pool: { type: 'string' },
    'token-sha256': { type: 'string' },
  },
});
if (!opt.pg || !['command', 'inline'].includes(opt.mode)) {
  console.error('usage: app.mjs --pg <connection string> --port <port> [--mode command|inline] [--workers N]');
  process.exit(2);
}
const workers = Math.max(1, Number(opt.workers));
const poolSize = Number(opt.pool ?? Math.max(2, Math.ceil(16 / workers)));

// ---- decide: validation and totals, as orderd's generated validator and app/rules.c ----------

class Invalid extends Error {}

const currencies = new Set(Intl.supportedValuesOf('currency'));

function str(obj, key, path, { required = false, max = 0, pattern = null } = {}) {
  const v = obj?.[key];
  if (v === undefined || v === null || v === '') {
    if (required) throw new Invalid(`${path} is required`);
    return '';
  }
  if (typeof v !== 'string') throw new Invalid(`${path}: a string is expected`);
  if (max && [...v].length > max) throw new Invalid(`${path}: at most ${max} characters`);
  if (pattern && !pattern.test(v)) throw new Invalid(`${path}: does not match ${pattern.source}`);
  return v;
}

function int(obj, key, path, { min = null, max = null, int64 = false } = {}) {
  let v = obj?.[key] ?? 0;
  if (int64 && typeof v === 'string' && /^-?\d+$/.test(v)) v = BigInt(v); // proto3 JSON int64
  else if (typeof v === 'number' && Number.isInteger(v)) v = BigInt(v);
  else throw new Invalid(`${path}: an integer is expected`);
  if (!int64 && (v > 2147483647n || v < -2147483648n)) throw new Invalid(`${path}: out of range`);
  if (min !== null && v < BigInt(min)) throw new Invalid(`${path}: at least ${min}`);
  if (max !== null && v > BigInt(max)) throw new Invalid(`${path}: at most ${max}`);
  return v;
}

const CURRENCY = /^[A-Z]{3}$/;
const COUNTRY = /^[A-Z]{2}$/;
const INT64_MAX = (1n << 63n) - 1n;

function money(m, path) {
  if (!m || typeof m !== 'object') throw new Invalid(`${path} is required`);
  return {
    currencyCode: str(m, 'currency_code', `${path}.currency_code`, { required: true, pattern: CURRENCY }),
    amountMinor: int(m, 'amount_minor', `${path}.amount_minor`, { min: 0, int64: true }),
  };
}

function address(a, path) {
  if (!a || typeof a !== 'object') throw new Invalid(`${path} is required`);
  return {
    name: str(a, 'name', `${path}.name`, { required: true, max: 200 }),
    line1: str(a, 'line1', `${path}.line1`, { required: true, max: 200 }),
    line2: str(a, 'line2', `${path}.line2`, { max: 200 }),
    city: str(a, 'city', `${path}.city`, { required: true, max: 100 }),
    region: str(a, 'region', `${path}.region`, { max: 100 }),
    postalCode: str(a, 'postal_code', `${path}.postal_code`, { required: true, max: 20 }),
    countryCode: str(a, 'country_code', `${path}.country_code`, { required: true, pattern: COUNTRY }),
  };
}

// The command as the service sees it after validation.
function validatePlaceOrder(body) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Invalid('the body must be a JSON object');
  const items = body.items;
  if (!Array.isArray(items) || items.length === 0) throw new Invalid('items is required');
  if (items.length > 1000) throw new Invalid('items: at most 1000 items');
  return {
    customerId: str(body, 'customer_id', 'customer_id', { required: true, max: 128 }),
    vendorId: str(body, 'vendor_id', 'vendor_id', { required: true, max: 128 }),
    paymentMethod: str(body, 'payment_method', 'payment_method', { required: true, max: 64 }),
    requestId: str(body, 'request_id', 'request_id', { max: 128 }),
    items: items.map((it, i) => ({
      productId: str(it, 'product_id', `items[${i}].product_id`, { required: true, max: 128 }),
      title: str(it, 'title', `items[${i}].title`, { max: 500 }),
      quantity: int(it, 'quantity', `items[${i}].quantity`, { min: 1, max: 100000 }),
      unitPrice: money(it?.unit_price, `items[${i}].unit_price`),
    })),
    shippingAddress: address(body.shipping_address, 'shipping_address'),
  };
}

// A pure function of the command (a creating command: no state): the OrderPlaced event.
function decidePlaceOrder(cmd, orderId, now) {
  const currency = cmd.items[0].unitPrice.currencyCode;
  let total = 0n;
  let units = 0n;
  const items = cmd.items.map((it, i) => {
    const field = `items[${i}].unit_price.currency_code`;
    if (!currencies.has(it.unitPrice.currencyCode))
      throw new Invalid(`${field}: ${it.unitPrice.currencyCode} is not an ISO 4217 currency code`);
    if (it.unitPrice.currencyCode !== currency)
      throw new Invalid(`${field} must be ${currency} like items[0]: an order has one currency`);
    const line = it.quantity * it.unitPrice.amountMinor;
    total += line;
    if (line > INT64_MAX || total > INT64_MAX)
      throw new Invalid(`items[${i}].unit_price.amount_minor: the order total does not fit in 64 bits`);
    units += it.quantity;
    return {
      productId: it.productId, title: it.title, quantity: Number(it.quantity),
      unitPrice: { currencyCode: currency, amountMinor: it.unitPrice.amountMinor.toString() },
      lineTotal: { currencyCode: currency, amountMinor: line.toString() },
    };
  });
  if (units > 2147483647n) throw new Invalid('items: too many units in one order');
  return {
    type: 'OrderPlaced',
    data: {
      orderId, customerId: cmd.customerId, vendorId: cmd.vendorId, items, itemCount: Number(units),
      total: { currencyCode: currency, amountMinor: total.toString() },
      paymentMethod: cmd.paymentMethod, shippingAddress: cmd.shippingAddress, placedAt: now.toISOString(),
    },
  };
}

// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version, 74 random bits; orderd assigns the same.
function uuidv7() {
  const b = crypto.randomBytes(16);
  const ms = BigInt(Date.now());
  for (let i = 0; i < 6; i++) b[i] = Number((ms >> BigInt(8 * (5 - i))) & 0xffn);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ---- the read model of --mode inline: an order summary document per order -------------------

const orderSummary = pongoSingleStreamProjection({
  collectionName: 'order_summary',
  canHandle: ['OrderPlaced'],
  getDocumentId: (event) => event.data.orderId,
  evolve: (doc, event) => {
    const e = event.data;
    return {
      ...(doc ?? {}),
      orderId: e.orderId, customerId: e.customerId, vendorId: e.vendorId, status: 'PLACED',
      paymentStatus: 'PENDING', itemCount: e.itemCount, total: e.total, items: e.items,
      paymentMethod: e.paymentMethod, shippingAddress: e.shippingAddress, placedAt: e.placedAt,
      version: Number(event.metadata.streamPosition),
    };
  },
});

function eventStore() {
  const pool = new pg.Pool({ connectionString: opt.pg, max: poolSize });
  return getPostgreSQLEventStore(opt.pg, {
    connectionOptions: { pool },
    schema: { autoMigration: 'None' }, // migrated once by the primary, before any worker starts
    projections: opt.mode === 'inline' ? projections.inline([orderSummary]) : [],
  });
}

// ---- HTTP ---------------------------------------------------------------------------------------

function answer(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

let logged = 0;

function serve() {
  const store = eventStore();
  const tokenHash = opt['token-sha256']?.toLowerCase();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') return answer(res, 200, { status: 'ok' });
    if (req.method !== 'POST' || req.url !== '/v1/orders') return answer(res, 404, { code: 5, message: 'not found' });
    if (tokenHash) {
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      if (crypto.createHash('sha256').update(token).digest('hex') !== tokenHash)
        return answer(res, 401, { code: 16, message: 'a valid bearer token is required' });
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let event;
      const orderId = uuidv7();
      try {
        const cmd = validatePlaceOrder(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        event = decidePlaceOrder(cmd, orderId, new Date());
      } catch (e) {
        if (e instanceof Invalid || e instanceof SyntaxError) return answer(res, 400, { code: 3, message: e.message });
        return answer(res, 500, { code: 13, message: String(e) });
      }
      const key = req.headers['idempotency-key'];
      if (key) event.metadata = { commandId: String(key) };
      try {
        const r = await store.appendToStream(`order-${orderId}`, [event],
          { expectedStreamVersion: STREAM_DOES_NOT_EXIST });
        answer(res, 200, { order_id: orderId, version: r.nextExpectedStreamVersion.toString() });
      } catch (e) {
        if (logged++ < 5) console.error(`append failed: ${e?.stack ?? e}`);
        answer(res, 500, { code: 13, message: String(e?.message ?? e) });
      }
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(Number(opt.port), '127.0.0.1');
  const stop = () => server.close(() => store.close().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (cluster.isPrimary) {
  // The event store's schema (and, inline, nothing else: Pongo creates its collection on first
  // use) is created once here, so that no worker races another to migrate.
  const store = getPostgreSQLEventStore(opt.pg, { schema: { autoMigration: 'CreateOrUpdate' } });
  await store.schema.migrate();
  await store.close();
  if (workers === 1) {
    serve();
  } else {
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on('exit', (w, code, signal) => {
      if (!w.exitedAfterDisconnect && code !== 0) {
        console.error(`worker ${w.process.pid} exited (${signal ?? code})`);
        process.exit(1);
      }
    });
    const stop = () => {
      for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
      setTimeout(() => process.exit(0), 2000).unref();
      cluster.on('exit', () => { if (Object.keys(cluster.workers).length === 0) process.exit(0); });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }
  console.error(`emmett peer (${opt.mode}) listening on 127.0.0.1:${opt.port}, ${workers} worker(s), pool ${poolSize}`);
} else {
  serve();
}

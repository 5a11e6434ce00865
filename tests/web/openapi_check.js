// Validates the generated OpenAPI documents with @apidevtools/swagger-parser (the installed copy
// in tools/node_modules; nothing is fetched) and checks that they say what the annotations say.
//   node openapi_check.js <repo root>
'use strict';
const path = require('path');
const fs = require('fs');
const assert = require('assert/strict');

const root = path.resolve(process.argv[2] || path.join(__dirname, '..', '..'));
let SwaggerParser;
try {
  SwaggerParser = require(path.join(root, 'tools', 'node_modules', '@apidevtools', 'swagger-parser'));
} catch (e) {
  console.error('FAIL: tools/node_modules has no @apidevtools/swagger-parser; run scripts/install-deps.sh (npm ci in tools/)');
  process.exit(1);
}

let passed = 0, failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

const load = rel => JSON.parse(fs.readFileSync(path.join(root, rel), 'utf8'));
const ORDERS = 'generated/openapi/orders_v1.openapi.json';
const GOLDEN = 'tests/codegen/golden/expected/openapi/golden_v1.openapi.json';

(async () => {
  for (const rel of [ORDERS, GOLDEN]) {
    await check(`${rel} is a valid OpenAPI 3 document`, async () => {
      // validate() checks the document against the OpenAPI 3.0 schema and resolves every $ref.
      const api = await SwaggerParser.validate(path.join(root, rel));
      assert.match(api.openapi, /^3\.0\./);
    });
  }

  await check('orders: every google.api.http route of service.proto is an operation', () => {
    const doc = load(ORDERS);
    const proto = fs.readFileSync(path.join(root, 'proto/orders/v1/service.proto'), 'utf8');
    const routes = [...proto.matchAll(/rpc (\w+)\([^)]*\)[^{]*\{(?:(?!\brpc )[\s\S])*?option \(google\.api\.http\) = \{ (get|post|put|delete|patch): "([^"]+)"/g)];
    assert.ok(routes.length >= 11, `found ${routes.length} routes in service.proto`);
    for (const [, rpc, verb, tpl] of routes) {
      const op = doc.paths[tpl.replace(/\{([^}=]+)(=[^}]*)?\}/g, '{$1}')]?.[verb];
      assert.ok(op, `${verb.toUpperCase()} ${tpl} (${rpc}) is missing`);
      assert.equal(op.operationId, `OrderService_${rpc}`);
      for (const v of tpl.matchAll(/\{([^}=]+)/g))
        assert.ok(op.parameters.some(p => p.in === 'path' && p.name === v[1] && p.required), `${rpc}: path parameter ${v[1]}`);
      assert.deepEqual(op.responses['4XX'], { $ref: '#/components/responses/Error' });
      assert.deepEqual(op.responses['5XX'], { $ref: '#/components/responses/Error' });
    }
  });

  await check('orders: schemas follow proto3 JSON and carry the (es.field) rules', () => {
    const s = load(ORDERS).components.schemas;
    const place = s['orders.v1.PlaceOrderRequest'];
    assert.deepEqual(place.required, ['customer_id', 'vendor_id', 'items', 'payment_method', 'shipping_address']);
    assert.deepEqual(place.properties.customer_id, { type: 'string', minLength: 1, maxLength: 128 });
    assert.equal(place.properties.order_id.format, 'uuid');
    assert.equal(place.properties.items.maxItems, 1000);
    assert.equal(place.properties.items.minItems, 1);
    assert.deepEqual(place.properties.items.items, { $ref: '#/components/schemas/orders.v1.LineItem' });
    assert.equal(place.properties.expected_version.type, 'string'); // Int64Value
    const money = s['orders.v1.Money'];
    assert.equal(money.properties.amount_minor.type, 'string');    // int64 as a string
    assert.equal(money.properties.amount_minor.format, 'int64');
    assert.equal(money.properties.currency_code.pattern, '^[A-Z]{3}$');
    const item = s['orders.v1.LineItem'];
    assert.equal(item.properties.quantity.minimum, 1);
    assert.equal(item.properties.quantity.maximum, 100000);
    assert.ok(item.required.includes('quantity'), 'a quantity of at least 1 must be present');
    assert.deepEqual(s['orders.v1.ShippingStatus'].enum.slice(0, 2), ['SHIPPING_STATUS_UNSPECIFIED', 'SHIPPING_STATUS_WAITING_FOR_PAYMENT']);
    const sum = s['orders.v1.OrderSummary'].properties;
    assert.deepEqual(sum.created_at, { type: 'string', format: 'date-time' });
    assert.equal(sum.version.type, 'string');
    assert.equal(s['orders.v1.EventRecord'].properties.data.required[0], '@type');
    assert.ok(s['orders.v1.OrderPaid'], 'events are documented for EventRecord.data');
    assert.deepEqual(s.Error.required, ['code', 'message', 'details']);
  });

  await check('orders: parameters and bodies', () => {
    const p = load(ORDERS).paths;
    const list = p['/v1/orders'].get.parameters;
    const limit = list.find(x => x.name === 'limit');
    assert.deepEqual([limit.in, limit.schema.minimum, limit.schema.maximum], ['query', 0, 1000]);
    assert.ok(list.some(x => x.name === 'customer_id' && x.in === 'query'));
    assert.ok(!p['/v1/orders'].get.requestBody, 'GET has no body');
    const ship = p['/v1/orders/{order_id}/shipping-status'].put;
    const body = ship.requestBody.content['application/json'].schema;
    assert.ok(!body.properties.order_id, 'order_id comes from the path, not the body');
    assert.deepEqual(body.required, ['status', 'carrier', 'tracking_number']);
    assert.deepEqual(body.properties.status.not, { enum: ['SHIPPING_STATUS_UNSPECIFIED'] });
    assert.ok(ship.parameters.some(x => x.$ref === '#/components/parameters/IdempotencyKey'));
    const get = p['/v1/orders/{order_id}'].get;
    assert.equal(get.parameters.find(x => x.name === 'order_id').schema.format, 'uuid');
    assert.equal(get.parameters.find(x => x.name === 'min_version').in, 'query');
  });

  await check('golden: body "field", additional bindings, DELETE, query parameters beside a body', () => {
    const p = load(GOLDEN).paths;
    const patch = p['/v1/tickets/{id}'].patch;
    assert.deepEqual(patch.requestBody.content['application/json'].schema, { type: 'string', minLength: 1 });
    assert.deepEqual(patch.parameters.filter(x => x.in === 'query').map(x => x.name), ['effort', 'priority']);
    assert.equal(p['/v1/tickets/{id}/assignee'].put.operationId, 'TicketService_AssignTicket_2');
    assert.ok(p['/v1/tickets/{ticket_id}'].delete && !p['/v1/tickets/{ticket_id}'].delete.requestBody);
    assert.ok(p['/v1/tickets/{ticket_id}'].get);
    const open = load(GOLDEN).components.schemas['golden.v1.OpenTicketRequest'].properties;
    assert.deepEqual(open.title, { type: 'string', minLength: 3, maxLength: 80, pattern: '^[^<>]*$' });
    assert.deepEqual(open.labels, { type: 'array', items: { type: 'string', maxLength: 20 }, maxItems: 5 });
    assert.equal(open.attachment.format, 'byte');
  });

  await check('the C string in orders_v1.openapi.c holds the JSON file byte for byte', () => {
    const c = fs.readFileSync(path.join(root, 'generated/orders/v1/orders_v1.openapi.c'), 'latin1');
    const init = c.slice(c.indexOf('orders_v1_openapi_json[] ='), c.indexOf(';\n\nconst size_t'));
    const bytes = [];
    for (const lit of init.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
      const t = lit[1];
      for (let i = 0; i < t.length; i++) {
        if (t[i] !== '\\') { bytes.push(t.charCodeAt(i)); continue; }
        const n = t[++i];
        if (/[0-7]/.test(n)) { bytes.push(parseInt(t.substr(i, 3), 8)); i += 2; }
        else bytes.push({ n: 10, t: 9, r: 13 }[n] ? { n: 10, t: 9, r: 13 }[n] : n.charCodeAt(0));
      }
    }
    assert.ok(Buffer.from(bytes).equals(fs.readFileSync(path.join(root, ORDERS))), 'the embedded string differs from the file');
  });

  await check('the generated C compiles as strict C11 (no trigraph, escapes intact)', () => {
    const { execFileSync } = require('child_process');
    const os = require('os');
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'openapi-c-'));
    try {
      for (const [inc, c] of [['generated', 'generated/orders/v1/orders_v1.openapi.c'],
        ['tests/codegen/golden/expected', 'tests/codegen/golden/expected/golden/v1/golden_v1.openapi.c']])
        execFileSync('cc', ['-std=c11', '-pedantic', '-Wall', '-Wextra', '-Werror', '-Wno-overlength-strings', '-c',
          '-I', path.join(root, inc), path.join(root, c), '-o', path.join(out, 'x.o')], { stdio: 'pipe' });
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  await check('the validator rejects a broken document (the checks above can fail)', async () => {
    const doc = load(ORDERS);
    delete doc.components.schemas['orders.v1.Money'];
    await assert.rejects(SwaggerParser.validate(doc));
    const doc2 = load(ORDERS);
    doc2.paths['/v1/orders'].get.parameters[0].in = 'body';
    await assert.rejects(SwaggerParser.validate(doc2));
  });

  console.log(`openapi: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();

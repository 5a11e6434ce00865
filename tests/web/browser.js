// Drives Debian's Chromium (headless, playwright-core from tools/node_modules) against a running
// orderd: with the page open the test places an order; the timeline must show it, then the
// payment flow paying it and a shipping update, live. Also validates the service's answers against the schemas
// of the OpenAPI document with ajv. Environment: ORDERD_BASE, CUSTOMER_ID,
// ARTEFACT_DIR (screenshots go there), OPENAPI (the generated document), REPO_ROOT.
'use strict';
const assert = require('assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { env, CHROMIUM, FLAGS, counts, step } = require('./chromium_steps');
const base = env('ORDERD_BASE');
let orderId = null; // placed by the test once the page is open
const customer = env('CUSTOMER_ID');
const artefacts = env('ARTEFACT_DIR');
const root = env('REPO_ROOT');
const modules = path.join(root, 'tools', 'node_modules');


async function api(method, p, body) {
  const res = await fetch(base + p, {
    method, headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

// ---- the answers of the running service against the OpenAPI schemas ---------------------------

function schemaValidator() {
  const Ajv = require(path.join(modules, 'ajv')).default;
  const ajv = new Ajv({ strict: false, allErrors: true });
  const str = re => ({ type: 'string', validate: s => re.test(s) });
  ajv.addFormat('int64', str(/^-?[0-9]+$/));
  ajv.addFormat('uint64', str(/^[0-9]+$/));
  ajv.addFormat('byte', str(/^[A-Za-z0-9+/_-]*={0,2}$/));
  ajv.addFormat('uuid', str(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i));
  ajv.addFormat('date-time', str(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/));
  ajv.addFormat('int32', { type: 'number', validate: n => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  const doc = JSON.parse(fs.readFileSync(env('OPENAPI'), 'utf8'));
  ajv.addSchema(doc, 'openapi.json');
  return (name, value) => {
    const v = ajv.getSchema(`openapi.json#/components/schemas/${name}`);
    assert.ok(v, `no schema ${name}`);
    if (!v(value)) throw new Error(`${name}: ${ajv.errorsText(v.errors)}\n${JSON.stringify(value)}`);
  };
}

async function validateAnswers(check) {
  let r = await api('GET', `/v1/orders/${orderId}`);
  assert.equal(r.status, 200);
  check('orders.v1.OrderSummary', r.body);
  r = await api('GET', `/v1/orders/${orderId}/events`);
  assert.equal(r.status, 200);
  check('orders.v1.GetOrderEventsResponse', r.body);
  assert.ok(r.body.events.length >= 4, `${r.body.events.length} events`); // placed, payment..., shipping
  for (const ev of r.body.events) { // each payload against its event schema
    const { '@type': type, ...payload } = ev.data;
    check(type.slice(type.indexOf('/') + 1), payload);
  }
  r = await api('GET', `/v1/orders?customer_id=${encodeURIComponent(customer)}`);
  assert.equal(r.status, 200);
  check('orders.v1.ListOrdersResponse', r.body);
  r = await api('GET', '/v1/orders/not-a-uuid');
  assert.equal(r.status, 400);
  check('Error', r.body);
  assert.equal(r.body.details[0].field, 'order_id');
  // A negative control: the validator does reject a wrong type.
  assert.throws(() => check('orders.v1.Money', { currency_code: 'EUR', amount_minor: 5 }));
}

// ---- the page ------------------------------------------------------------------------------

async function main() {
  fs.mkdirSync(artefacts, { recursive: true });
  const check = schemaValidator();

  const { chromium } = require(path.join(modules, 'playwright-core'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'orderd-chromium-'));
  // launchPersistentContext is how playwright passes --user-data-dir: a new, empty profile.
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1360, height: 1000 },
    timeout: 60000,
  });
  const problems = [], foreign = [];
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(30000);
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => {
      // Failed loads are judged by their responses below; any other error logged (a CSP
      // violation, an exception) is a defect.
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('response', r => {
      const u = new URL(r.url());
      // Expected: 409 while the read model catches up with min_version (the page asks again),
      // and 404 for the unknown order id the last step searches for.
      const expected = (r.status() === 409 && u.searchParams.has('min_version')) ||
        (r.status() === 404 && u.pathname.includes('00000000-0000-7000-8000-000000000000'));
      if (r.status() >= 400 && !expected) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    page.on('request', r => { if (!r.url().startsWith(base + '/')) foreign.push(r.url()); });

    await step('the page loads', async () => {
      const res = await page.goto(base + '/');
      assert.equal(res.status(), 200);
      await page.locator('#welcome').waitFor({ state: 'visible' });
      assert.equal(await page.title(), 'orderd · order timeline');
    });

    await step('the test places an order and searches for its id', async () => {
      const r = await api('POST', '/v1/orders', {
        customer_id: customer, vendor_id: 'vendor-web', payment_method: 'card',
        items: [{ product_id: 'sku-lamp', title: 'Desk lamp', quantity: 2, unit_price: { currency_code: 'EUR', amount_minor: '2450' } },
          { product_id: 'sku-bulb', title: 'LED bulb', quantity: 3, unit_price: { currency_code: 'EUR', amount_minor: '399' } }],
        shipping_address: { name: 'Ada Lovelace', line1: "12 St James's Square", city: 'London', postal_code: 'SW1Y 4JH', country_code: 'GB' },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      check('orders.v1.CommandResult', r.body);
      orderId = r.body.order_id;
      console.log(`  placed order ${orderId} for ${customer}`);
      await page.fill('#q', orderId);
      await page.press('#q', 'Enter');
      await page.waitForURL(`**/#order=${orderId}`);
    });

    await step('the order shows: summary and the placed event', async () => {
      await page.locator('.event[data-type="OrderPlaced"]').waitFor();
      await page.evaluate(() => { window.__noReload = true; });
      assert.equal(await page.locator('[data-field="order_id"]').innerText(), orderId);
      await page.waitForFunction(c => document.querySelector('[data-field="customer_id"]').textContent === c, customer);
      await page.waitForFunction(() => document.querySelector('[data-field="total"]').textContent === '60.97 EUR');
      assert.equal(await page.locator('#items tbody tr').count(), 2);
      assert.match(await page.locator('#address').innerText(), /Ada Lovelace[\s\S]*London/);
    });

    await step('the payment flow pays it: payment lane and summary follow', async () => {
      await page.locator('.event[data-type="OrderPaid"]').waitFor({ timeout: 60000 });
      // It arrived after the order was on screen (a poll appended it, the page did not reload).
      assert.ok(await page.locator('#events > li:has(.event[data-type="OrderPaid"])').evaluate(li => li.classList.contains('fresh')),
        'OrderPaid was not appended live');
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded instead of updating');
      for (const t of ['OrderPaymentInitiated', 'OrderPaid'])
        assert.equal(await page.locator(`.event[data-type="${t}"]`).getAttribute('data-lane'), 'payment', t);
      assert.equal(await page.locator('.event[data-type="OrderPlaced"]').getAttribute('data-lane'), 'order');
      await page.locator('[data-field="status"][data-value="ORDER_STATUS_PAID"]').waitFor({ timeout: 30000 });
      await page.locator('[data-field="payment_status"][data-value="PAYMENT_STATUS_PAID"]').waitFor();
      assert.match(await page.locator('.event[data-type="OrderPaid"]').innerText(), /60\.97 EUR/);
      // Events appear in version order.
      const versions = await page.locator('#events > li').evaluateAll(lis => lis.map(li => Number(li.dataset.version)));
      assert.deepEqual(versions, [...versions].sort((a, b) => a - b));
      assert.equal(versions[0], 1);
    });

    await step('a shipping update appears live in the shipping lane', async () => {
      const before = await page.locator('#events > li').count();
      const r = await api('PUT', `/v1/orders/${orderId}/shipping-status`, {
        status: 'SHIPPING_STATUS_IN_TRANSIT', carrier: 'DHL', tracking_number: 'JD014600003', location: 'Leipzig',
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      check('orders.v1.CommandResult', r.body);
      const ev = page.locator('.event[data-type="OrderShippingStatusUpdated"]');
      await ev.waitFor({ timeout: 10000 });
      assert.equal(await ev.getAttribute('data-lane'), 'shipping');
      assert.match(await ev.innerText(), /In transit[\s\S]*DHL[\s\S]*JD014600003[\s\S]*Leipzig/);
      assert.equal(await page.locator('#events > li').count(), before + 1);
      assert.ok(await page.locator('#events > li').last().evaluate(li => li.classList.contains('fresh')));
      assert.equal(await page.evaluate(() => window.__noReload), true, 'the page reloaded instead of updating');
      await page.locator('[data-field="shipping_status"][data-value="SHIPPING_STATUS_IN_TRANSIT"]').waitFor({ timeout: 30000 });
      assert.equal(await page.locator('[data-field="location"]').innerText(), 'Leipzig');
      await page.waitForTimeout(2600); // let the arrival highlight fade before the screenshot
      await page.screenshot({ path: path.join(artefacts, 'order-timeline.png'), fullPage: true });
    });

    await step('service answers match the OpenAPI schemas', () => validateAnswers(check));

    await step('search by customer lists the order; its link opens the timeline', async () => {
      await page.goto(base + '/');
      await page.fill('#q', customer);
      await page.click('#search-button');
      const row = page.locator(`#orders-table tr[data-order-id="${orderId}"]`);
      await row.waitFor({ state: 'visible' });
      assert.equal(await page.locator('#orders-table tbody tr').count(), 1);
      assert.match(await row.innerText(), /Paid[\s\S]*In transit[\s\S]*60\.97 EUR/);
      await page.screenshot({ path: path.join(artefacts, 'customer-orders.png') });
      await row.locator('a').click();
      await page.waitForURL(`**/#order=${orderId}`);
      await page.locator('.event[data-type="OrderShippingStatusUpdated"]').waitFor();
      assert.equal(await page.locator('[data-field="order_id"]').innerText(), orderId);
    });

    await step('an unknown order id says so', async () => {
      await page.fill('#q', '00000000-0000-7000-8000-000000000000');
      await page.press('#q', 'Enter');
      await page.locator('#message.error').waitFor();
      assert.match(await page.locator('#message').innerText(), /No order/);
    });

    await step('no script errors, nothing fetched from elsewhere', async () => {
      assert.deepEqual(problems, []);
      assert.deepEqual(foreign, []);
    });
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`browser: ${counts.passed} passed, ${counts.failed} failed; screenshots in ${artefacts}`);
}

main().then(() => process.exit(counts.failed ? 1 : 0), e => {
  console.log(`browser: ${counts.passed} passed, ${counts.failed} failed: ${e && e.message}`);
  process.exit(1);
});

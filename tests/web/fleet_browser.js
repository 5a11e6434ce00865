// Drives Debian's Chromium (headless, playwright-core from tools/node_modules) against the fleet
// dashboard of a running orderd (tests/web/test_fleet.py starts two instances and the dead ones):
// without a token the page asks for one; with the admin token, while this script places orders
// on both instances, the charts must show both instances with non-zero calls per second and the
// dead instances marked down. Environment: ORDERD_BASE, ORDERD_BASE_B, TOKEN, URL_A, URL_B,
// URL_DEAD, URL_SILENT, ARTEFACT_DIR, REPO_ROOT.
'use strict';
const assert = require('assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { env, CHROMIUM, FLAGS, counts, step } = require('./chromium_steps');
const base = env('ORDERD_BASE');
const baseB = env('ORDERD_BASE_B');
const token = env('TOKEN');
const [urlA, urlB, urlDead, urlSilent] = ['URL_A', 'URL_B', 'URL_DEAD', 'URL_SILENT'].map(env);
const artefacts = env('ARTEFACT_DIR');
const modules = path.join(env('REPO_ROOT'), 'tools', 'node_modules');


let placed = 0;
async function placeOrder(at) {
  const res = await fetch(at + '/v1/orders', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify({
      customer_id: 'cust-fleet', vendor_id: 'vendor-fleet', payment_method: 'card',
      items: [{ product_id: 'sku-1', quantity: 1, unit_price: { currency_code: 'EUR', amount_minor: '100' } }],
      shipping_address: { name: 'Ada', line1: '1 Main St', city: 'Paris', postal_code: '75001', country_code: 'FR' },
    }),
  });
  assert.equal(res.status, 200, await res.text());
  placed++;
}

async function main() {
  fs.mkdirSync(artefacts, { recursive: true });
  const { chromium } = require(path.join(modules, 'playwright-core'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'orderd-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1360, height: 1400 }, timeout: 60000,
  });
  const problems = [], foreign = [];
  let tokenGiven = false;
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.setDefaultTimeout(30000);
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => {
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    page.on('response', r => {
      // Expected: 401 from /fleet/metrics before the token is entered.
      const expected = r.status() === 401 && !tokenGiven && new URL(r.url()).pathname === '/fleet/metrics';
      if (r.status() >= 400 && !expected) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    page.on('request', r => { if (!r.url().startsWith(base + '/')) foreign.push(r.url()); });

    await step('the timeline page links the fleet page', async () => {
      await page.goto(base + '/');
      await page.click('footer a[href="/fleet"]');
      await page.waitForURL(base + '/fleet');
      assert.equal(await page.title(), 'orderd · fleet');
    });

    await step('without a token the page asks for an admin token', async () => {
      await page.locator('#message.error').waitFor();
      assert.match(await page.locator('#message').innerText(), /admin token/);
      assert.equal(await page.locator('#token-box').evaluate(d => d.open), true);
    });

    await step('with the token, under load on both instances: both up with calls/s > 0, the dead ones down', async () => {
      tokenGiven = true;
      await page.fill('#token', token);
      await page.locator('#token').dispatchEvent('change');
      let done = false;
      const load = (async () => {
        for (let i = 0; !done; i++) await placeOrder(i % 2 ? baseB : base);
      })();
      try {
        await page.waitForFunction(([a, b, dead, silent]) => {
          const row = u => document.querySelector(`#instances tr[data-instance="${u}"]`);
          const busy = u => row(u) && row(u).dataset.state === 'up' && Number(row(u).dataset.rate) > 0;
          const legend = u => document.querySelector(`#chart-rate .legend li[data-series="${u}"]`);
          const charted = u => legend(u) && Number(legend(u).dataset.value) > 0 &&
            document.querySelector(`#chart-rate [data-series="${u}"]:is(polyline, circle)`);
          const down = u => row(u) && row(u).dataset.state === 'down';
          return busy(a) && busy(b) && charted(a) && charted(b) && down(dead) && down(silent);
        }, [urlA, urlB, urlDead, urlSilent], { timeout: 120000, polling: 250 });
      } finally {
        done = true;
        await load;
      }
      console.log(`  placed ${placed} orders`);
      const rowText = async u => page.locator(`#instances tr[data-instance="${u}"]`).innerText();
      assert.match(await rowText(urlDead), /down[\s\S]*—/);
      assert.match(await rowText(urlDead), /connect/);
      assert.match(await rowText(urlSilent), /within 1500 ms/);
      // The dead instance stays on the chart as "down", it is not dropped.
      assert.equal(await page.locator(`#chart-rate .legend li[data-series="${urlDead}"] .value`).innerText(), 'down');
      // PlaceOrder is charted by method, with a rate.
      const method = page.locator('#chart-method .legend li[data-series="PlaceOrder"]');
      await method.waitFor();
      assert.ok(Number(await method.getAttribute('data-value')) > 0);
      // p99 from the histogram's buckets, in milliseconds.
      await page.waitForFunction(u => /ms$/.test(document.querySelector(`#instances tr[data-instance="${u}"] [data-field="p99"]`).textContent), urlA);
      // Exactly one relay is active across the two instances.
      const relays = [await page.locator(`#instances tr[data-instance="${urlA}"] [data-field="relay"]`).innerText(),
        await page.locator(`#instances tr[data-instance="${urlB}"] [data-field="relay"]`).innerText()];
      assert.deepEqual(relays.sort(), ['active', 'standby']);
      // Partitions per instance: a count per consumer, or n/a when the metric is absent.
      for (const u of [urlA, urlB]) {
        const text = await page.locator(`#instances tr[data-instance="${u}"] [data-field="partitions"]`).innerText();
        assert.match(text, /^(n\/a|(projection\.order_summary|payment-flow): \d+.*)$/, text);
        assert.ok(await page.locator(`#chart-partitions .legend li[data-series^="${u}"]`).count() >= 1);
      }
      assert.equal(await page.locator(`#chart-partitions .legend li[data-series="${urlDead}"]`).getAttribute('data-value'), 'down');
      // The lag and dead-letter charts have a series per consumer of each instance.
      for (const id of ['chart-projection', 'chart-dead'])
        assert.ok(await page.locator(`#${id} .legend li[data-series^="${urlA} "]`).count() >= 1, id);
      await page.screenshot({ path: path.join(artefacts, 'fleet.png'), fullPage: true });
    });

    await step('no script errors, nothing fetched from elsewhere', async () => {
      assert.deepEqual(problems, []);
      assert.deepEqual(foreign, []);
    });
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`fleet browser: ${counts.passed} passed, ${counts.failed} failed; screenshot in ${artefacts}`);
}

main().then(() => process.exit(counts.failed ? 1 : 0), e => {
  console.log(`fleet browser: ${counts.passed} passed, ${counts.failed} failed: ${e && e.message}`);
  process.exit(1);
});

// What the browser tests share: required environment, Debian's Chromium and its flags, and named
// steps counted for the closing line (tests/web/browser.js, tests/web/fleet_browser.js).
'use strict';

const env = name => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const counts = { passed: 0, failed: 0 };
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    counts.passed++;
    console.log(`  ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)}s)`);
  } catch (e) {
    counts.failed++;
    console.log(`  FAIL ${name}: ${e.stack || e}`);
    throw e;
  }
}

module.exports = { env, CHROMIUM, FLAGS, counts, step };

// tests/e2e/tls.test.js - the production profile: nginx terminates TLS with a
// certificate made by openssl for this run, sessiond runs with
// server.env = production (the __Host- cookie, Secure), and the whole flow
// (login, CSRF-protected transfer, devices, consent, logout) still works.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const e2e = require('./lib.js');

let browser;
let stack;

before(async () => {
  browser = await e2e.launchBrowser();
  stack = await e2e.startStack('tls', { env: 'production', tls: true });
});
after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

test('production over TLS: __Host- cookie, Secure, and the whole flow works', (t) => e2e.withArtifacts(t, async (track) => {
  const base = stack.url;
  assert.match(base, /^https:/);
  // The certificate is this run's own, so the browser is told to accept it.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = track(await ctx.newPage());
  await e2e.login(page, base, 'ivan');
  assert.equal(await page.textContent('#account-user'), 'ivan');

  const jar = await e2e.cookieMap(ctx, base);
  const s = jar['__Host-sessiond'];
  assert.ok(s, 'the session cookie is __Host-sessiond');
  assert.equal(s.secure, true);
  assert.equal(s.httpOnly, true);
  assert.equal(s.path, '/');
  assert.ok(!s.domain.startsWith('.'), 'host-only (no Domain)');
  assert.equal(jar.sessiond, undefined);
  assert.ok(jar.cart_id && jar.cart_id.secure, 'the cart cookie is Secure too');
  assert.ok(!(await e2e.docCookie(page)).includes('sessiond='));

  // CSRF both ways.
  assert.equal((await e2e.pagePost(page, '/transfer', { to: 'judy', amount: '10' }, { token: false })).status, 403);
  assert.equal((await e2e.pagePost(page, '/transfer', { to: 'judy', amount: '10' })).status, 200);

  // Consent and the trackers, with Secure attributes from the production profile.
  await page.goto(`${base}/cookies`);
  await Promise.all([page.waitForURL(/\/cookies/), page.click('#consent-all')]);
  await page.goto(`${base}/`);
  const j2 = await e2e.cookieMap(ctx, base);
  for (const n of ['_ga', '_gid', '_fbp']) assert.ok(j2[n] && j2[n].secure, `${n} set and Secure`);
  assert.ok(Object.keys(j2).some((n) => n.startsWith('__Host-') && /consent/.test(n)), 'the consent cookie is __Host- in production');

  // Devices and logout.
  await page.goto(`${base}/devices`);
  assert.equal(await page.locator('#devices tr.current').count(), 1);
  await Promise.all([page.waitForURL(/\/login\?bye=1/), page.click('#logout')]);
  assert.equal((await e2e.cookieMap(ctx, base))['__Host-sessiond'], undefined);
  await page.goto(`${base}/account`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await ctx.close();
}));

// tests/e2e/rotation.test.js - periodic rotation seen from a real browser:
// with a short session.rotate_interval, 20 concurrent fetches that all carry
// the old ID must all pass, all get the same successor in Set-Cookie (no
// forked session), and the browser must stay logged in on the successor.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const e2e = require('./lib.js');

const ROTATE = 3; // seconds; the grace must be shorter (a config rule)
let browser;
let stack;

before(async () => {
  browser = await e2e.launchBrowser();
  stack = await e2e.startStack('rotation', {
    sets: [`session.rotate_interval=${ROTATE}`, `session.rotation_grace=${ROTATE - 1}`],
    shopEnv: { SHOP_POLL_MS: '0' },      // no background polls: this test counts requests
  });
});
after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

test('rotation under 20 concurrent fetches keeps the user logged in and issues one successor', (t) => e2e.withArtifacts(t, async (track) => {
  const base = stack.url;
  const ctx = await browser.newContext();
  const page = track(await ctx.newPage());
  await e2e.login(page, base, 'heidi');
  const before = (await e2e.cookieMap(ctx, base)).sessiond.value;
  const handle = (await e2e.pageGetJson(page, '/api/me')).body.handle;

  const setCookies = [];
  page.on('response', async (r) => {
    if (!r.url().endsWith('/api/me')) return;
    const v = await r.headerValue('set-cookie');
    if (v) setCookies.push(v);
  });
  // Let the ID age past the interval, then fire 20 fetches at once.
  await new Promise((r) => setTimeout(r, (ROTATE + 0.5) * 1000));
  const results = await page.evaluate(() => Promise.all(Array.from({ length: 20 }, () =>
    fetch('/api/me', { headers: { Accept: 'application/json' } }).then(async (r) => ({ status: r.status, body: await r.json() })))));
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(r.body.user, 'heidi');
    assert.equal(r.body.handle, handle, 'rotation keeps the handle');
  }
  await e2e.eventually('the Set-Cookie headers were seen', () => setCookies.length > 0, 5000);
  const ids = new Set(setCookies.map((v) => /(?:^|\n)sessiond=([A-Za-z0-9_-]{43})/.exec(v)?.[1]).filter(Boolean));
  assert.equal(ids.size, 1, `one successor for every concurrent request, got ${ids.size}`);
  const [successor] = ids;
  assert.notEqual(successor, before);
  const after = (await e2e.cookieMap(ctx, base)).sessiond.value;
  assert.equal(after, successor, 'the browser now holds the successor');

  // Still one session for the user, with the same handle: no fork.
  const devs = (await e2e.pageGetJson(page, '/api/devices')).body.sessions;
  assert.deepEqual(devs.map((s) => s.handle), [handle]);
  // Past the grace window the old ID is dead, and the browser does not care.
  await new Promise((r) => setTimeout(r, ROTATE * 1000));
  await page.goto(`${base}/account`);
  assert.equal(await page.textContent('#account-user'), 'heidi');
  const old = await fetch(`${stack.sessiondUrl}/v1/sessions/validate`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ session_id: before, client: { ip: '127.0.0.1', user_agent: await page.evaluate(() => navigator.userAgent) } }),
  });
  assert.equal(old.status, 401, 'the rotated-away ID no longer works');
  await ctx.close();
}));

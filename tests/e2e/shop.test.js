// tests/e2e/shop.test.js - the demo shop in headless Chromium, through the
// real nginx (auth_request -> sessiond's GET /v1/auth), development profile:
// login and cookie visibility, cross-site and same-site CSRF, logout in every
// tab, the per-user limit across four browsers, "log out all others", and
// the consent banner deciding the analytics and marketing cookies.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const e2e = require('./lib.js');

let browser;
let stack;
let base;

before(async () => {
  browser = await e2e.launchBrowser();
  stack = await e2e.startStack('dev', { sets: ['session.max_per_user=3', 'session.limit_policy=evict_oldest'] });
  base = stack.url;
});
after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

test('login works; the session cookie is hidden from scripts, the preferences cookie is not', (t) => e2e.withArtifacts(t, async (track) => {
  const ctx = await browser.newContext();
  const page = track(await ctx.newPage());
  await page.goto(`${base}/login`);
  await e2e.shot(page, 'login');
  await e2e.login(page, base, 'alice');
  assert.equal(await page.textContent('#account-user'), 'alice');
  await e2e.shot(page, 'account');

  const jar = await e2e.cookieMap(ctx, base);
  assert.ok(jar.sessiond, 'the browser holds the session cookie');
  assert.equal(jar.sessiond.httpOnly, true);
  assert.equal(jar.sessiond.sameSite, 'Lax');
  assert.match(jar.sessiond.value, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(jar.cart_id, 'the anonymous cart cookie was set on the first visit');
  assert.ok(!(await e2e.docCookie(page)).includes('sessiond='), 'document.cookie must not show the session cookie');

  // Preferences are functional: allowed once the visitor consents to them.
  await page.goto(`${base}/cookies`);
  await page.check('input[value="functional"]');
  await Promise.all([page.waitForURL(/\/cookies/), page.click('#consent-save')]);
  await page.goto(`${base}/prefs`);
  await page.selectOption('#prefs-lang', 'de');
  await page.selectOption('#prefs-theme', 'dark');
  await Promise.all([page.waitForURL(/saved=1/), page.click('#prefs-save')]);
  const visible = await e2e.docCookie(page);
  assert.match(visible, /user_prefs=/, 'document.cookie shows user_prefs');
  assert.ok(!visible.includes('sessiond='), 'still no session cookie in document.cookie');
  assert.match(await page.textContent('#prefs-js'), /language de, theme dark/);
  assert.equal(await page.evaluate(() => document.body.classList.contains('theme-dark')), true);
  await ctx.close();
}));

test('a cross-site form POST from another site is refused', (t) => e2e.withArtifacts(t, async (track) => {
  const ctx = await browser.newContext();
  const page = track(await ctx.newPage());
  await e2e.login(page, base, 'bob');
  const before = (await e2e.pageGetJson(page, '/api/transfers')).body;

  const form = (action) => `<!doctype html><form id="f" method="post" action="${action}">
<input name="to" value="mallory"><input name="amount" value="5000"><input name="memo" value="csrf"></form>
<script>document.getElementById('f').submit();</script>`;
  // 1. Another site (127.0.0.2): SameSite=Lax keeps the cookie at home, and
  //    forward-auth would refuse the Origin anyway.
  // 2. Same site, another origin (127.0.0.1 on another port): the cookie is
  //    sent, and forward-auth's Origin / Sec-Fetch-Site check refuses it.
  for (const host of ['127.0.0.2', '127.0.0.1']) {
    const evil = await e2e.otherSite(host);
    try {
      evil.serve(form(`${base}/transfer`));
      const attacker = track(await ctx.newPage());
      const resp = [];
      attacker.on('response', (r) => { if (r.url().startsWith(`${base}/transfer`)) resp.push(r.status()); });
      await attacker.goto(evil.url);
      await e2e.eventually('the forged POST was answered', () => resp.length > 0);
      assert.ok([302, 401, 403].includes(resp[0]), `forged POST from ${host} answered ${resp[0]}`);
      await attacker.close();
    } finally { await evil.close(); }
  }
  const afterT = (await e2e.pageGetJson(page, '/api/transfers')).body;
  assert.deepEqual(afterT, before, 'no money moved');
  await ctx.close();
}));

test('a same-site POST without the CSRF token is refused, with it accepted', (t) => e2e.withArtifacts(t, async (track) => {
  const ctx = await browser.newContext();
  const page = track(await ctx.newPage());
  await e2e.login(page, base, 'carol');
  const without = await e2e.pagePost(page, '/transfer', { to: 'dave', amount: '100' }, { token: false });
  assert.equal(without.status, 403, 'no X-CSRF-Token: forward-auth says 403');
  assert.equal((await e2e.pageGetJson(page, '/api/transfers')).body.transfers.length, 0);
  const withTok = await e2e.pagePost(page, '/transfer', { to: 'dave', amount: '100' });
  assert.equal(withTok.status, 200, withTok.body);
  // And through the page's own form (shop.js sends the header).
  await page.fill('#transfer-to', 'erin');
  await page.fill('#transfer-amount', '250');
  await page.fill('#transfer-memo', '<script>alert(1)</script>');
  await Promise.all([page.waitForURL(/\/account/), page.click('#transfer-submit')]);
  await page.waitForSelector('#transfers td:has-text("erin")');
  const t2 = (await e2e.pageGetJson(page, '/api/transfers')).body.transfers;
  assert.deepEqual(t2.map((x) => x.to), ['dave', 'erin']);
  // The memo is shown as text, never run as markup (escaping).
  assert.equal(await page.locator('#transfers script').count(), 0);
  await ctx.close();
}));

test('logout kills the session in every open tab', (t) => e2e.withArtifacts(t, async (track) => {
  const ctx = await browser.newContext();
  const tab1 = track(await ctx.newPage());
  await e2e.login(tab1, base, 'dave');
  const tab2 = track(await ctx.newPage());
  await tab2.goto(`${base}/account`);
  assert.equal(await tab2.textContent('#account-user'), 'dave');
  const sid = (await e2e.cookieMap(ctx, base)).sessiond.value;

  await Promise.all([tab1.waitForURL(/\/login\?bye=1/), tab1.click('#logout')]);
  // The other tab notices by itself (it polls /api/me) and shows the login page.
  await tab2.waitForURL(/\/login/, { timeout: 15000 });
  assert.equal((await e2e.pageGetJson(tab2, '/api/me')).status, 401);
  assert.equal((await e2e.cookieMap(ctx, base)).sessiond, undefined, 'the clearing Set-Cookie removed the cookie');
  // The old ID is dead in sessiond, not just forgotten by the browser.
  const r = await fetch(`${stack.sessiondUrl}/v1/sessions/validate`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ session_id: sid, client: { ip: '127.0.0.1', user_agent: await tab1.evaluate(() => navigator.userAgent) } }),
  });
  assert.equal(r.status, 401);
  await ctx.close();
}));

test('the fourth login evicts the oldest browser, which sees the login page next', (t) => e2e.withArtifacts(t, async (track) => {
  const ctxs = [];
  const pages = [];
  for (let i = 0; i < 4; i += 1) {
    const ctx = await browser.newContext();
    const page = track(await ctx.newPage());
    await e2e.login(page, base, 'frank');
    ctxs.push(ctx);
    pages.push(page);
  }
  await pages[0].goto(`${base}/account`);
  assert.match(new URL(pages[0].url()).pathname, /^\/login$/, 'the oldest browser was logged out');
  for (let i = 1; i < 4; i += 1) {
    await pages[i].goto(`${base}/account`);
    assert.equal(await pages[i].textContent('#account-user'), 'frank', `browser ${i + 1} is still logged in`);
  }
  const devs = (await e2e.pageGetJson(pages[3], '/api/devices')).body.sessions;
  assert.equal(devs.length, 3);
  for (const c of ctxs) await c.close();
}));

test('"log out all others" ends the other browsers\' sessions at once', (t) => e2e.withArtifacts(t, async (track) => {
  const ctxs = [];
  const pages = [];
  for (let i = 0; i < 3; i += 1) {
    const ctx = await browser.newContext({ userAgent: `e2e-device-${i + 1}` });
    const page = track(await ctx.newPage());
    await e2e.login(page, base, 'grace');
    ctxs.push(ctx);
    pages.push(page);
  }
  const me = pages[2];
  await me.goto(`${base}/devices`);
  assert.equal(await me.locator('#devices tr.device').count(), 3);
  await e2e.shot(me, 'devices');

  // "Log out this device" on the first browser's row.
  const first = (await e2e.pageGetJson(pages[0], '/api/me')).body.handle;
  await Promise.all([me.waitForResponse((r) => r.url().endsWith('/devices/revoke')), me.click(`tr[data-handle="${first}"] button.revoke`)]);
  await e2e.eventually('the first browser is logged out', () => e2e.loggedOut(pages[0], base));
  await me.waitForSelector(`tr[data-handle="${first}"]`, { state: 'detached' });
  assert.equal(await me.locator('#devices tr.device').count(), 2);

  await Promise.all([me.waitForResponse((r) => r.url().endsWith('/devices/revoke-others') && r.status() === 200), me.click('#revoke-others')]);
  // At once: the very next request of each other browser is refused.
  assert.equal(await e2e.loggedOut(pages[1], base), true);
  assert.equal(await e2e.loggedOut(pages[0], base), true);
  await me.goto(`${base}/devices`);
  assert.equal(await me.locator('#devices tr.device').count(), 1);
  assert.equal(await me.locator('#devices tr.current').count(), 1);
  for (const c of ctxs) await c.close();
}));

const TRACKERS = ['_ga', '_gid', '_fbp'];
test('no analytics or marketing cookie before consent; set after consent, deleted after withdrawal', (t) => e2e.withArtifacts(t, async (track) => {
  const ctx = await browser.newContext();
  const page = track(await ctx.newPage());
  await page.goto(`${base}/`);
  await page.waitForSelector('#consent-banner');
  await e2e.shot(page, 'consent');
  for (const n of TRACKERS) assert.equal((await e2e.cookieMap(ctx, base))[n], undefined, `${n} before consent`);
  // Browsing on does not set them either.
  await page.goto(`${base}/prefs`);
  for (const n of TRACKERS) assert.equal((await e2e.cookieMap(ctx, base))[n], undefined, `${n} before consent`);

  // Analytics only: _ga and _gid, no _fbp.
  await page.goto(`${base}/cookies`);
  await page.check('input[value="analytics"]');
  await Promise.all([page.waitForURL(/\/cookies/), page.click('#consent-save')]);
  await page.goto(`${base}/`);
  let jar = await e2e.cookieMap(ctx, base);
  assert.ok(jar._ga && jar._gid, 'analytics cookies after consent');
  assert.equal(jar._fbp, undefined, 'no marketing cookie without marketing consent');
  assert.equal(await page.locator('#consent-banner').count(), 0, 'no banner once consent is given');

  // Everything.
  await page.goto(`${base}/cookies`);
  await Promise.all([page.waitForURL(/\/cookies/), page.click('#consent-all')]);
  await page.goto(`${base}/`);
  jar = await e2e.cookieMap(ctx, base);
  for (const n of TRACKERS) assert.ok(jar[n], `${n} after consent to all`);

  // Withdrawal: only essential; the trackers are deleted by the answer itself.
  await page.goto(`${base}/cookies`);
  await Promise.all([page.waitForURL(/\/cookies/), page.click('#consent-none')]);
  jar = await e2e.cookieMap(ctx, base);
  for (const n of TRACKERS) assert.equal(jar[n], undefined, `${n} after withdrawal`);
  assert.ok(jar.cart_id, 'the essential cart cookie stays');
  await page.goto(`${base}/`);
  jar = await e2e.cookieMap(ctx, base);
  for (const n of TRACKERS) assert.equal(jar[n], undefined, `${n} not set again after withdrawal`);
  await ctx.close();
}));

test('a tampered consent cookie counts as no consent', (t) => e2e.withArtifacts(t, async (track) => {
  const ctx = await browser.newContext();
  const page = track(await ctx.newPage());
  await page.goto(`${base}/cookies`);
  await Promise.all([page.waitForURL(/\/cookies/), page.click('#consent-all')]);
  const jar = await e2e.cookieMap(ctx, base);
  const consent = Object.values(jar).find((c) => /consent/.test(c.name));
  assert.ok(consent, 'a consent cookie was set');

  // Forge it: keep the signature, flip a character of the signed part; and
  // separately, keep the text and break the signature.
  const v = consent.value;
  const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  for (const forged of [flip(v, v.lastIndexOf('.') - 1), flip(v, v.length - 3)]) {
    await ctx.clearCookies();
    await ctx.addCookies([{ ...consent, value: forged }]);
    await page.goto(`${base}/`);
    const now = await e2e.cookieMap(ctx, base);
    for (const n of TRACKERS) assert.equal(now[n], undefined, `${n} with a forged consent cookie`);
    await page.waitForSelector('#consent-banner');
    await page.goto(`${base}/cookies`);
    assert.match(await page.textContent('#consent-state'), /not given consent/);
  }
  await ctx.close();
}));

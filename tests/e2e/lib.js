// tests/e2e/lib.js - shared parts of the browser tests: the real stack
// (examples/shop/stack.js: sessiond, the shop, nginx), Debian's headless
// Chromium driven by playwright-core, the artifacts under E2E_ARTIFACTS
// (build/e2e/: screenshots, and on failure the page's screenshot and console
// log), and small helpers for logging in and reading cookies.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const assert = require('node:assert/strict');
const { chromium } = require('playwright-core');
const stackLib = require('../../examples/shop/stack.js');

const ARTIFACTS = path.resolve(process.env.E2E_ARTIFACTS || path.join(stackLib.ROOT, 'build', 'e2e'));
fs.mkdirSync(ARTIFACTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PASSWORD = 'e2e-demo-password';
const USERS = 'alice,bob,carol,dave,erin,frank,grace,heidi,ivan,judy,mallory,oscar';

async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-deps.sh`);
  const args = ['--disable-gpu', '--disable-dev-shm-usage'];
  // Chromium's sandbox needs user namespaces that root in a container lacks.
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 60000 });
}

async function startStack(name, opts = {}) {
  const work = fs.mkdtempSync(`/tmp/sessiond-e2e-${name}-`);
  const stack = await stackLib.start({
    work,
    ...opts,
    shopEnv: { DEMO_PASSWORD: PASSWORD, SHOP_USERS: USERS, SHOP_POLL_MS: '1000', ...(opts.shopEnv || {}) },
  });
  // On stop, keep the three processes' logs as artifacts (<name>-sessiond.log
  // ...) and remove the work directory (store, keys, certificate).
  const stop = stack.stop;
  stack.stop = async () => {
    await stop();
    for (const [proc, log] of Object.entries(stack.logs)) {
      try { fs.copyFileSync(log, path.join(ARTIFACTS, `${name}-${proc}.log`)); } catch { /* never written */ }
    }
    fs.rmSync(work, { recursive: true, force: true });
  };
  return stack;
}

// Run one test body with failure artifacts: every page it registers with
// track() gets its console recorded; if the body throws, each page's
// screenshot and console log are saved as <test>-<n>.fail.png / .console.log.
async function withArtifacts(t, body) {
  const pages = [];
  const slug = t.name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
  const track = (page) => {
    const log = [];
    page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
    page.on('requestfailed', (r) => log.push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure() && r.failure().errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) log.push(`[http ${r.status()}] ${r.request().method()} ${r.url()}`); });
    pages.push({ page, log });
    return page;
  };
  // A passing run leaves no failure artifacts of an earlier run behind.
  for (const f of fs.readdirSync(ARTIFACTS)) {
    if (f.startsWith(`${slug}-`) && /\.(fail\.png|console\.log)$/.test(f)) fs.rmSync(path.join(ARTIFACTS, f), { force: true });
  }
  try {
    await body(track);
  } catch (e) {
    let n = 0;
    for (const { page, log } of pages) {
      n += 1;
      const base = path.join(ARTIFACTS, `${slug}-${n}`);
      try { await page.screenshot({ path: `${base}.fail.png`, fullPage: true }); } catch { /* page closed */ }
      let url = '';
      try { url = page.url(); } catch { /* closed */ }
      fs.writeFileSync(`${base}.console.log`, `url: ${url}\n${log.join('\n')}\n`);
    }
    e.message += ` (artifacts: ${ARTIFACTS}/${slug}-*)`;
    throw e;
  }
}

const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

async function login(page, base, user, { expect = '/account' } = {}) {
  await page.goto(`${base}/login`);
  await page.fill('#user', user);
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL((u) => u.pathname === expect), page.click('#login-submit')]);
}

async function cookieMap(context, url) {
  const m = {};
  for (const c of await context.cookies(url)) m[c.name] = c;
  return m;
}

// From the page itself: what a script can see, and a fetch with or without
// the CSRF header (the token the page carries in <meta name="csrf-token">).
const docCookie = (page) => page.evaluate(() => document.cookie);
function pagePost(page, url, form, { token = true, accept = 'application/json' } = {}) {
  return page.evaluate(async ({ url, form, token, accept }) => {
    const headers = { Accept: accept, 'Content-Type': 'application/x-www-form-urlencoded' };
    if (token) headers['X-CSRF-Token'] = document.querySelector('meta[name="csrf-token"]').content;
    const r = await fetch(url, { method: 'POST', headers, body: new URLSearchParams(form), credentials: 'same-origin', redirect: 'manual' });
    return { status: r.status, body: await r.text() };
  }, { url, form, token, accept });
}
const pageGetJson = (page, url) => page.evaluate(async (url) => {
  const r = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  return { status: r.status, body };
}, url);

// A second site for the cross-site tests: another loopback host (or port)
// that serves whatever page the test gives it.
async function otherSite(host) {
  let pageHtml = '';
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(pageHtml);
  });
  await new Promise((r) => srv.listen(0, host, r));
  return {
    url: `http://${host}:${srv.address().port}`,
    serve(h) { pageHtml = h; },
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(r); }),
  };
}

// Is this browser logged out?  Its next visit to a protected page ends on
// the login page (nginx turns forward-auth's 401 into a redirect).
async function loggedOut(page, base) {
  await page.goto(`${base}/account`);
  return new URL(page.url()).pathname === '/login';
}

async function eventually(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

module.exports = {
  ARTIFACTS, PASSWORD, launchBrowser, startStack, withArtifacts, shot, login, cookieMap,
  docCookie, pagePost, pageGetJson, otherSite, eventually, loggedOut,
};

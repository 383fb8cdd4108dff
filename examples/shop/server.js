// examples/shop/server.js - the demo shop: a small express application that
// sits behind nginx and leaves sessions, CSRF and the cookie policy to
// sessiond.  nginx's auth_request (GET /v1/auth) guards the protected routes
// and passes X-Session-User / X-Session-Handle / X-Session-CSRF-Token /
// X-Cookie-Consent; the shop itself calls sessiond's JSON API to log in, log
// out, list and revoke sessions, and to build every cookie it sets from the
// catalogue (/v1/cookies/set).  Pages are server-rendered; every value that
// goes into HTML passes through esc() (the html`` tag does it by default).
'use strict';
const crypto = require('node:crypto');
const path = require('node:path');
const express = require('express');
const cookie = require('cookie');

const SESSIOND = process.env.SESSIOND_URL || 'http://127.0.0.1:7700';
const API_KEY = process.env.SESSIOND_API_KEY || '';
const SESSION_COOKIE = process.env.SESSION_COOKIE || 'sessiond';
const DEMO_PASSWORD = process.env.DEMO_PASSWORD || 'demo';
const POLL_MS = Number(process.env.SHOP_POLL_MS || 5000);
// Only the proxy in front (nginx, on loopback) may tell us the client's address.
const TRUSTED_PROXIES = (process.env.SHOP_TRUSTED_PROXIES || '127.0.0.1,::1').split(',').map((s) => s.trim());
const [LISTEN_HOST, LISTEN_PORT] = (process.env.SHOP_LISTEN || '127.0.0.1:8080').split(':');

// Demo accounts: every one has the password DEMO_PASSWORD.
const USERS = new Set((process.env.SHOP_USERS || 'alice,bob,carol').split(',').map((s) => s.trim()).filter(Boolean));
const PRODUCTS = [
  { id: 'tea', name: 'Green tea, 100 g', price: 650 },
  { id: 'mug', name: 'Stoneware mug', price: 1400 },
  { id: 'pot', name: 'Cast-iron teapot', price: 4900 },
];
const LANGUAGES = { en: 'English', de: 'Deutsch', fr: 'Français' };
const THEMES = { light: 'Light', dark: 'Dark' };

// In-memory shop state (a demo: a restart forgets it).
const carts = new Map();      // cart_id -> [product ids]
const ledgers = new Map();    // user -> { balance, transfers: [] }
const ledger = (u) => { if (!ledgers.has(u)) ledgers.set(u, { balance: 100000, transfers: [] }); return ledgers.get(u); };

// ---- HTML: escape everything (template injection / XSS) -------------------
const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);
class Raw { constructor(s) { this.s = s; } toString() { return this.s; } }
const raw = (s) => new Raw(s);
function html(strings, ...vals) {
  let out = strings[0];
  vals.forEach((v, i) => {
    const one = (x) => (x instanceof Raw ? x.s : esc(x));
    out += Array.isArray(v) ? v.map(one).join('') : one(v);
    out += strings[i + 1];
  });
  return raw(out);
}
const money = (cents) => `€${(cents / 100).toFixed(2)}`;

// ---- sessiond's JSON API --------------------------------------------------
async function api(method, p, body, extraHeaders = {}) {
  const headers = { Accept: 'application/json', ...extraHeaders };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (API_KEY) headers.Authorization = `Bearer ${API_KEY}`;
  const r = await fetch(SESSIOND + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: r.status, json };
}

// The browser's address as nginx saw it.  X-Forwarded-For is believed only
// from a trusted proxy (address spoofing), and nginx replaces it, so the
// last entry is the one nginx wrote.
function clientIp(req) {
  let peer = req.socket.remoteAddress || '';
  if (peer.startsWith('::ffff:')) peer = peer.slice(7);
  const xff = req.get('X-Forwarded-For');
  if (TRUSTED_PROXIES.includes(peer) && xff) {
    const last = xff.split(',').pop().trim();
    if (last) return last.startsWith('::ffff:') ? last.slice(7) : last;
  }
  return peer;
}
const client = (req) => ({ ip: clientIp(req), user_agent: req.get('User-Agent') || '' });

// ---- cookies, all built by sessiond from the catalogue --------------------
const cookies = (req) => cookie.parse(req.get('Cookie') || '');
let policyCache = null;
async function policy() {
  if (policyCache && Date.now() - policyCache.at < 5000) return policyCache.doc;
  const r = await api('GET', '/v1/cookies/policy');
  const doc = r.status === 200 ? r.json : null;
  policyCache = { at: Date.now(), doc };
  return doc;
}
// The name of the consent cookie, as the policy declares it.
async function consentCookieName() {
  const p = await policy();
  return (p && p.consent_cookie) || 'sessiond_consent';
}
// Ask sessiond for the Set-Cookie of a declared cookie, passing the
// browser's consent cookie: sessiond verifies its signature and refuses
// (403 consent_required) a cookie whose category has no consent.  null when
// refused or undeclared.
async function setCookieFor(req, name, value) {
  const consentValue = cookies(req)[await consentCookieName()];
  const body = { name, value };
  if (consentValue) body.consent = consentValue;
  const r = await api('POST', '/v1/cookies/set', body);
  if (r.status === 200 && r.json && typeof r.json.set_cookie === 'string') return r.json.set_cookie;
  if (r.status !== 403) console.error(`shop: /v1/cookies/set ${name}: HTTP ${r.status}`);
  return null;
}
// The categories the browser validly consented to, or null (no consent
// cookie, or one that is tampered, expired or for an older policy version:
// the banner asks again).  sessiond verifies it: the shop passes only the
// consent cookie to GET /v1/cookies/policy, never the session cookie.
async function consentOf(req) {
  const name = await consentCookieName();
  const value = cookies(req)[name];
  if (!value) return null;
  const r = await api('GET', '/v1/cookies/policy', undefined, { Cookie: cookie.serialize(name, value, { encode: String }) });
  const c = r.status === 200 && r.json ? r.json.consent : null;
  return c && c.status === 'valid' && Array.isArray(c.categories) ? c.categories : null;
}

const randomId = (n = 16) => crypto.randomBytes(n).toString('base64url');
const ANALYTICS = {
  _ga: () => `GA1.1.${crypto.randomInt(1e9)}.${Math.floor(Date.now() / 1000)}`,
  _gid: () => `GA1.1.${crypto.randomInt(1e9)}.${Math.floor(Date.now() / 1000)}`,
  _fbp: () => `fb.1.${Date.now()}.${crypto.randomInt(1e9)}`,
};

// ---- the request pipeline -------------------------------------------------
const app = express();
app.disable('x-powered-by');
app.set('trust proxy', false);        // clientIp() decides, with the rule above
app.use(express.urlencoded({ extended: false, limit: '8kb' }));
app.use(express.json({ limit: '8kb' }));
app.use((req, res, next) => {
  // Scripts only from our own files: an injected <script> would not run (XSS).
  res.set('Content-Security-Policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'");
  res.set('X-Content-Type-Options', 'nosniff');
  res.set('Referrer-Policy', 'same-origin');
  res.set('Cache-Control', 'no-store');
  next();
});
app.use('/static', express.static(path.join(__dirname, 'public'), { maxAge: 0 }));

// The user nginx vouches for (only on protected routes, where nginx
// overwrites these headers; on public routes nginx blanks them).
function sessionOf(req) {
  const user = req.get('X-Session-User');
  const handle = req.get('X-Session-Handle');
  if (!user || !handle) return null;
  const decoded = req.get('X-Session-User-Encoding') === 'percent' ? decodeURIComponent(user) : user;
  return { user: decoded, handle, csrf: req.get('X-Session-CSRF-Token') || '' };
}
function requireSession(req, res, next) {
  req.session = sessionOf(req);
  // Reached without nginx's forward-auth in front: refuse rather than trust.
  if (!req.session) return res.status(401).json({ error: 'invalid_session', message: 'log in first' });
  next();
}
// Public unsafe routes (login, cart, consent, preferences) have no session
// to hold a CSRF token: refuse cross-site posts by Origin (login CSRF).
function sameOrigin(req, res, next) {
  const origin = req.get('Origin');
  const site = req.get('Sec-Fetch-Site');
  const host = req.get('Host');
  if (site === 'cross-site' || (origin && (origin === 'null' || new URL(origin).host !== host))) {
    return res.status(403).type('text/plain').send('cross-site request refused');
  }
  next();
}
const wantsJson = (req) => (req.get('Accept') || '').includes('application/json');
function done(req, res, to, message) {
  if (wantsJson(req)) return res.json({ ok: true, redirect: to, message });
  return res.redirect(303, to);
}
function fail(req, res, status, message) {
  if (wantsJson(req)) return res.status(status).json({ error: 'bad_request', message });
  return res.status(status).type('html').send(page(req, { title: 'Error' }, html`<p class="error">${message}</p>`).s);
}

// Every visitor gets an anonymous cart (essential, 7 days, from the catalogue).
app.use(async (req, res, next) => {
  try {
    if (req.path.startsWith('/static')) return next();
    const c = cookies(req);
    if (c.cart_id && /^[A-Za-z0-9_-]{22}$/.test(c.cart_id)) { req.cartId = c.cart_id; return next(); }
    const id = randomId(16);
    const sc = await setCookieFor(req, 'cart_id', id);
    if (sc) { res.append('Set-Cookie', sc); req.cartId = id; }
    next();
  } catch (e) { next(e); }
});
// Analytics and marketing cookies, only where consent allows them: sessiond
// refuses the Set-Cookie (403 consent_required) otherwise.
app.use(async (req, res, next) => {
  try {
    if (req.path.startsWith('/static') || req.method !== 'GET') return next();
    const c = cookies(req);
    if (!c[await consentCookieName()]) return next();
    for (const [name, make] of Object.entries(ANALYTICS)) {
      if (c[name]) continue;
      const sc = await setCookieFor(req, name, make());
      if (sc) res.append('Set-Cookie', sc);
    }
    next();
  } catch (e) { next(e); }
});

// ---- pages ------------------------------------------------------------------
function page(req, { title, session, csrf, banner }, body) {
  const s = session || sessionOf(req);
  const token = csrf || (s && s.csrf);
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${token ? html`<meta name="csrf-token" content="${token}">` : ''}
${s ? html`<meta name="session-poll" content="${POLL_MS}">` : ''}
<title>${title} · Teashop</title>
<link rel="stylesheet" href="/static/shop.css">
<script src="/static/shop.js" defer></script>
</head><body>
<header><a class="brand" href="/">Teashop</a>
<nav><a href="/">Shop</a> <a href="/checkout">Cart (${(carts.get(req.cartId) || []).length})</a>
${s ? html`<a href="/account">Account</a> <a href="/devices">Your devices</a>
<form class="inline" method="post" action="/logout" data-protected><button id="logout">Log out ${s.user}</button></form>`
    : html`<a href="/login" id="login-link">Log in</a>`}
<a href="/prefs">Preferences</a> <a href="/cookies">Cookie settings</a></nav></header>
<main><h1>${title}</h1>
<p id="prefs-js" class="muted"></p>
${body}
<p id="flash" role="status"></p>
</main>
${banner || ''}
</body></html>`;
}

// The consent banner, rendered from the policy matrix (GET /v1/cookies/policy).
function consentForm(pol, current, { banner }) {
  if (!pol || !Array.isArray(pol.categories)) {
    return html`<p class="error">The cookie policy is unavailable.</p>`;
  }
  const rows = pol.categories.map((cat) => {
    const required = !cat.consent_required;
    const checked = required || (current && current.includes(cat.name));
    const list = (cat.cookies || []).map((c) => html`<li><code>${c.name}</code>: ${c.purpose}${c.retention ? html` (${c.retention})` : ''}</li>`);
    return html`<fieldset class="category"><label><input type="checkbox" name="categories" value="${cat.name}"
${checked ? raw('checked') : ''} ${required ? raw('disabled') : ''}> <strong>${cat.name}</strong>${required ? ' (always on)' : ''}</label>
<ul>${list}</ul></fieldset>`;
  });
  return html`<form method="post" action="/cookies/consent" id="${banner ? 'consent-banner' : 'consent-form'}" class="${banner ? 'banner' : ''}">
<p>We use cookies. Essential ones keep you logged in and your cart; the others only with your consent.
Policy version ${pol.version ?? ''}.</p>
${rows}
<button name="choice" value="selected" id="consent-save">Save my choice</button>
<button name="choice" value="all" id="consent-all">Accept all</button>
<button name="choice" value="none" id="consent-none">Only essential</button>
</form>`;
}
async function bannerFor(req) {
  const current = await consentOf(req);
  if (current) return '';
  return consentForm(await policy(), null, { banner: true });
}

app.get('/', async (req, res, next) => {
  try {
    const list = PRODUCTS.map((p) => html`<li><span>${p.name}</span> <span>${money(p.price)}</span>
<form class="inline" method="post" action="/cart/add"><input type="hidden" name="product" value="${p.id}"><button>Add to cart</button></form></li>`);
    res.type('html').send(page(req, { title: 'Shop', banner: await bannerFor(req) }, html`<ul class="products">${list}</ul>`).s);
  } catch (e) { next(e); }
});

app.post('/cart/add', sameOrigin, (req, res) => {
  const p = PRODUCTS.find((x) => x.id === req.body.product);
  if (!p || !req.cartId) return fail(req, res, 400, 'unknown product');
  const cart = carts.get(req.cartId) || [];
  if (cart.length < 50) cart.push(p.id);
  carts.set(req.cartId, cart);
  return done(req, res, '/', 'added');
});

// ---- login and logout -------------------------------------------------------
const safeNext = (n) => (typeof n === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(n) ? n : '/account'); // open redirect
function passwordOk(given) {
  // Compare digests in constant time (timing side channel).
  const a = crypto.createHash('sha256').update(String(given ?? '')).digest();
  const b = crypto.createHash('sha256').update(DEMO_PASSWORD).digest();
  return crypto.timingSafeEqual(a, b);
}

app.get('/login', async (req, res, next) => {
  try {
    const msg = req.query.bye ? 'You are logged out.' : (req.query.failed ? 'Wrong user name or password.' : '');
    res.type('html').send(page(req, { title: 'Log in', banner: await bannerFor(req) }, html`
<form method="post" action="/login" id="login-form">
<input type="hidden" name="next" value="${safeNext(req.query.next)}">
<label>User <input name="user" id="user" autocomplete="username" required></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button id="login-submit">Log in</button></form>
<p class="muted">Demo users: alice, bob, carol; the password is set by DEMO_PASSWORD (default "demo").</p>
${msg ? html`<p class="notice" id="login-message">${msg}</p>` : ''}`).s);
  } catch (e) { next(e); }
});

app.post('/login', sameOrigin, async (req, res, next) => {
  try {
    const user = String(req.body.user || '');
    const ok = passwordOk(req.body.password) && USERS.has(user);
    if (!ok) return res.redirect(303, '/login?failed=1');
    const r = await api('POST', '/v1/sessions', { user_id: user, client: client(req), data: {} });
    if (r.status !== 201) return fail(req, res, 503, 'the session service did not log you in; try again');
    // Set-Cookie exactly as sessiond built it for this environment.
    res.append('Set-Cookie', r.json.set_cookie);
    if (r.json.evicted && r.json.evicted.length) console.log(`shop: login of ${user} evicted ${r.json.evicted.length} older session(s)`);
    return res.redirect(303, safeNext(req.body.next));
  } catch (e) { next(e); }
});

app.post('/logout', requireSession, async (req, res, next) => {
  try {
    const sid = cookies(req)[SESSION_COOKIE];
    if (sid) {
      const r = await api('POST', '/v1/sessions/destroy', { session_id: sid });
      if (r.status === 200 && r.json.set_cookie) res.append('Set-Cookie', r.json.set_cookie);
    }
    return done(req, res, '/login?bye=1', 'logged out');
  } catch (e) { next(e); }
});

// ---- account, transfer, checkout (CSRF: nginx's forward-auth checks it) ----
app.get('/account', requireSession, async (req, res, next) => {
  try {
    const { user, handle, csrf } = req.session;
    const l = ledger(user);
    const rows = l.transfers.slice(-10).reverse().map((t) => html`<tr><td>${t.to}</td><td>${money(t.amount)}</td><td>${t.memo}</td></tr>`);
    res.type('html').send(page(req, { title: 'Your account', csrf, banner: await bannerFor(req) }, html`
<p>Logged in as <strong id="account-user">${user}</strong>; this session's handle is <code id="account-handle">${handle}</code>.</p>
<p>Cookie consent, as forward-auth verified it (X-Cookie-Consent): <code id="account-consent">${req.get('X-Cookie-Consent') || 'essential'}</code></p>
<p>Balance: <strong id="balance">${money(l.balance)}</strong></p>
<h2>Transfer money</h2>
<form method="post" action="/transfer" id="transfer-form" data-protected>
<label>To <input name="to" id="transfer-to" required maxlength="64"></label>
<label>Amount (cents) <input name="amount" id="transfer-amount" type="number" min="1" max="100000" required></label>
<label>Memo <input name="memo" id="transfer-memo" maxlength="140"></label>
<button id="transfer-submit">Send</button></form>
<table id="transfers"><tr><th>To</th><th>Amount</th><th>Memo</th></tr>${rows}</table>`).s);
  } catch (e) { next(e); }
});

app.post('/transfer', requireSession, (req, res) => {
  const amount = Number(req.body.amount);
  const to = String(req.body.to || '').slice(0, 64);
  if (!to || !Number.isInteger(amount) || amount < 1 || amount > 100000) return fail(req, res, 400, 'give a recipient and an amount of 1 to 100000 cents');
  const l = ledger(req.session.user);
  if (amount > l.balance) return fail(req, res, 400, 'not enough money');
  l.balance -= amount;
  l.transfers.push({ to, amount, memo: String(req.body.memo || '').slice(0, 140) });
  return done(req, res, '/account', `sent ${money(amount)} to ${to}`);
});

app.get('/api/transfers', requireSession, (req, res) => {
  const l = ledger(req.session.user);
  res.json({ balance: l.balance, transfers: l.transfers });
});

app.get('/checkout', requireSession, async (req, res, next) => {
  try {
    const items = (carts.get(req.cartId) || []).map((id) => PRODUCTS.find((p) => p.id === id));
    const total = items.reduce((a, p) => a + p.price, 0);
    res.type('html').send(page(req, { title: 'Checkout', csrf: req.session.csrf, banner: await bannerFor(req) }, html`
<ul id="cart">${items.map((p) => html`<li>${p.name} ${money(p.price)}</li>`)}</ul>
<p>Total ${money(total)}</p>
<form method="post" action="/checkout" id="checkout-form" data-protected><button id="pay">Pay ${money(total)}</button></form>`).s);
  } catch (e) { next(e); }
});

app.post('/checkout', requireSession, (req, res) => {
  const items = (carts.get(req.cartId) || []).map((id) => PRODUCTS.find((p) => p.id === id));
  const total = items.reduce((a, p) => a + p.price, 0);
  const l = ledger(req.session.user);
  if (!items.length) return fail(req, res, 400, 'your cart is empty');
  if (total > l.balance) return fail(req, res, 400, 'not enough money');
  l.balance -= total;
  l.transfers.push({ to: 'Teashop', amount: total, memo: `order of ${items.length} item(s)` });
  carts.set(req.cartId, []);
  return done(req, res, '/account', 'paid');
});

app.get('/api/me', requireSession, (req, res) => res.json({ user: req.session.user, handle: req.session.handle }));
// A page open across a rotation refreshes its token here (same-origin only:
// another site cannot read the answer).
app.get('/api/csrf', requireSession, (req, res) => res.json({ csrf_token: req.session.csrf }));

// ---- your devices -----------------------------------------------------------
const userPath = (u) => `/v1/users/${encodeURIComponent(u)}/sessions`;
async function sessionsOf(user) {
  const r = await api('GET', userPath(user));
  if (r.status !== 200) throw new Error(`listing sessions: HTTP ${r.status}`);
  return r.json.sessions;
}

app.get('/devices', requireSession, async (req, res, next) => {
  try {
    const { user, handle, csrf } = req.session;
    const list = await sessionsOf(user);
    const rows = list.map((s) => html`<tr class="device${s.handle === handle ? ' current' : ''}" data-handle="${s.handle}">
<td><code>${s.handle}</code>${s.handle === handle ? html` <em>(this device)</em>` : ''}</td>
<td>${s.user_agent || '(unknown browser)'}</td><td>${s.ip}</td>
<td>${new Date(s.created_at * 1000).toISOString()}</td><td>${new Date(s.last_seen_at * 1000).toISOString()}</td>
<td><form method="post" action="/devices/revoke" data-protected><input type="hidden" name="handle" value="${s.handle}">
<button class="revoke">Log out this device</button></form></td></tr>`);
    res.type('html').send(page(req, { title: 'Your devices', csrf, banner: await bannerFor(req) }, html`
<table id="devices"><tr><th>Session</th><th>Browser</th><th>Address</th><th>Logged in</th><th>Last seen</th><th></th></tr>${rows}</table>
<form method="post" action="/devices/revoke-others" id="revoke-others-form" data-protected>
<button id="revoke-others">Log out all other devices</button></form>`).s);
  } catch (e) { next(e); }
});

app.get('/api/devices', requireSession, async (req, res, next) => {
  try { res.json({ current: req.session.handle, sessions: await sessionsOf(req.session.user) }); } catch (e) { next(e); }
});

app.post('/devices/revoke', requireSession, async (req, res, next) => {
  try {
    const { user, handle } = req.session;
    const target = String(req.body.handle || '');
    // Only the user's own sessions: a handle from someone else is refused
    // (insecure direct object reference).
    const mine = (await sessionsOf(user)).some((s) => s.handle === target);
    if (!mine) return fail(req, res, 404, 'no such session of yours');
    const r = await api('DELETE', `/v1/sessions/${encodeURIComponent(target)}`);
    if (r.status !== 204 && r.status !== 404) return fail(req, res, 503, 'the session service is unavailable');
    if (target === handle) {
      const d = await api('POST', '/v1/sessions/destroy', { session_id: cookies(req)[SESSION_COOKIE] || '' });
      if (d.status === 200 && d.json.set_cookie) res.append('Set-Cookie', d.json.set_cookie);
      return done(req, res, '/login?bye=1', 'logged out');
    }
    return done(req, res, '/devices', 'that device is logged out');
  } catch (e) { next(e); }
});

app.post('/devices/revoke-others', requireSession, async (req, res, next) => {
  try {
    const { user, handle } = req.session;
    const r = await api('DELETE', `${userPath(user)}?except=${encodeURIComponent(handle)}`);
    if (r.status !== 200) return fail(req, res, 503, 'the session service is unavailable');
    return done(req, res, '/devices', `${r.json.revoked} other session(s) logged out`);
  } catch (e) { next(e); }
});

// ---- preferences (functional cookie, readable by JavaScript) ----------------
app.get('/prefs', async (req, res, next) => {
  try {
    const cur = new URLSearchParams(cookies(req).user_prefs || '');
    const opt = (map, sel) => Object.entries(map).map(([k, v]) => html`<option value="${k}"${k === sel ? raw(' selected') : ''}>${v}</option>`);
    const msg = req.query.refused ? 'Preferences need consent to functional cookies (see cookie settings).' : (req.query.saved ? 'Saved.' : '');
    res.type('html').send(page(req, { title: 'Preferences', banner: await bannerFor(req) }, html`
<form method="post" action="/prefs" id="prefs-form">
<label>Language <select name="lang" id="prefs-lang">${opt(LANGUAGES, cur.get('lang'))}</select></label>
<label>Theme <select name="theme" id="prefs-theme">${opt(THEMES, cur.get('theme'))}</select></label>
<button id="prefs-save">Save</button></form>
${msg ? html`<p class="notice" id="prefs-message">${msg}</p>` : ''}`).s);
  } catch (e) { next(e); }
});

app.post('/prefs', sameOrigin, async (req, res, next) => {
  try {
    const lang = Object.hasOwn(LANGUAGES, req.body.lang) ? req.body.lang : 'en';
    const theme = Object.hasOwn(THEMES, req.body.theme) ? req.body.theme : 'light';
    const sc = await setCookieFor(req, 'user_prefs', new URLSearchParams({ lang, theme }).toString());
    if (!sc) return done(req, res, '/prefs?refused=1', 'consent to functional cookies first');
    res.append('Set-Cookie', sc);
    return done(req, res, '/prefs?saved=1', 'saved');
  } catch (e) { next(e); }
});

// ---- cookie consent ---------------------------------------------------------
app.get('/cookies', async (req, res, next) => {
  try {
    const pol = await policy();
    const current = await consentOf(req);
    res.type('html').send(page(req, { title: 'Cookie settings' }, html`
<p id="consent-state">${current ? `You consented to: ${current.join(', ')}` : 'You have not given consent.'}</p>
${consentForm(pol, current, { banner: false })}`).s);
  } catch (e) { next(e); }
});

app.post('/cookies/consent', sameOrigin, async (req, res, next) => {
  try {
    const pol = await policy();
    if (!pol) return fail(req, res, 503, 'the cookie policy is unavailable');
    const all = pol.categories.map((c) => c.name);
    let chosen = [].concat(req.body.categories || []).map(String).filter((c) => all.includes(c));
    if (req.body.choice === 'all') chosen = all;
    if (req.body.choice === 'none') chosen = [];
    const body = { categories: [...new Set(['essential', ...chosen])] };
    // The previous consent, so that sessiond deletes the cookies of every
    // category it granted and this answer does not (withdrawal).
    const previous = cookies(req)[await consentCookieName()];
    if (previous) body.consent = previous;
    const r = await api('POST', '/v1/cookies/consent', body);
    if (r.status !== 200 || !r.json) return fail(req, res, 503, 'the consent was not saved; try again');
    res.append('Set-Cookie', r.json.set_cookie);
    for (const del of r.json.delete || []) res.append('Set-Cookie', del);
    return done(req, res, safeNext(req.get('Referer') ? new URL(req.get('Referer')).pathname : '/'), 'saved');
  } catch (e) { next(e); }
});

app.use((req, res) => fail(req, res, 404, 'no such page'));
// Errors say what failed, never what the request carried.
app.use((err, req, res, _next) => {
  console.error(`shop: ${req.method} ${req.path}: ${err.message}`);
  if (res.headersSent) return;
  if (err.type === 'entity.too.large' || err.type === 'entity.parse.failed') return fail(req, res, 400, 'bad request body');
  fail(req, res, 500, 'something went wrong');
});

const server = app.listen(Number(LISTEN_PORT), LISTEN_HOST, () => {
  const a = server.address();
  console.log(`shop: listening on http://${a.address}:${a.port} (sessiond ${SESSIOND})`);
});
server.keepAliveTimeout = 65000;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });

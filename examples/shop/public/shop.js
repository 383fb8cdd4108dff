// examples/shop/public/shop.js - the shop's only script (the CSP allows no
// inline script).  It sends the protected forms with fetch and the
// X-CSRF-Token header that nginx's forward-auth (GET /v1/auth) checks, shows
// the JavaScript-readable preferences cookie, and notices a session ended
// elsewhere (logout in another tab, eviction, "log out all others").
'use strict';
(function () {
  const meta = (n) => { const m = document.querySelector(`meta[name="${n}"]`); return m ? m.content : ''; };
  let csrf = meta('csrf-token');
  const flash = (text) => { const f = document.getElementById('flash'); if (f) f.textContent = text; };

  // user_prefs is readable here on purpose (not HttpOnly); the session cookie is not.
  const prefs = document.cookie.split('; ').find((c) => c.startsWith('user_prefs='));
  if (prefs) {
    const p = new URLSearchParams(decodeURIComponent(prefs.slice('user_prefs='.length)));
    if (p.get('theme') === 'dark') document.body.classList.add('theme-dark');
    if (p.get('lang')) document.documentElement.lang = p.get('lang');
    const el = document.getElementById('prefs-js');
    if (el) el.textContent = `Preferences read by JavaScript: language ${p.get('lang') || '?'}, theme ${p.get('theme') || '?'}`;
  }

  async function refreshToken() {
    const r = await fetch('/api/csrf', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (!r.ok) return false;
    csrf = (await r.json()).csrf_token || '';
    return !!csrf;
  }
  async function send(form) {
    const post = () => fetch(form.action, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token': csrf },
      body: new URLSearchParams(new FormData(form)),
    });
    let r = await post();
    // A page rendered before a rotation holds the previous token, which is
    // accepted only within the grace window: fetch the current one once.
    if (r.status === 403 && await refreshToken()) r = await post();
    if (r.status === 401) { location.assign('/login?next=' + encodeURIComponent(location.pathname)); return; }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) { flash((body && body.message) || `refused (${r.status})`); return; }
    if (body && body.redirect) location.assign(body.redirect); else location.reload();
  }
  document.querySelectorAll('form[data-protected]').forEach((form) => {
    form.addEventListener('submit', (ev) => { ev.preventDefault(); send(form).catch((e) => flash(String(e))); });
  });

  // A protected page watches its session: when it is gone (logged out in
  // another tab, evicted, revoked from another device) show the login page.
  const poll = Number(meta('session-poll'));
  if (poll > 0) {
    setInterval(async () => {
      try {
        const r = await fetch('/api/me', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
        if (r.status === 401) location.assign('/login?next=' + encodeURIComponent(location.pathname));
      } catch (e) { /* offline: try again */ }
    }, poll);
  }
})();

// tests/audit/sites/express/app.js - a tiny express-session site, as the
// express-session README's example is commonly deployed: the default
// MemoryStore, saveUninitialized (every visitor gets a session), the user
// put into the existing session at login (no req.session.regenerate),
// req.session.destroy() at logout (which leaves the cookie; the next page
// replaces it with a new anonymous session), no
// CSRF token, no Cache-Control.  Run: node app.js PORT PASSWORD
'use strict';
const crypto = require('node:crypto');
const express = require('express');
const session = require('express-session');

const [port, password] = process.argv.slice(2);
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({ secret: crypto.randomBytes(32).toString('hex'), resave: false, saveUninitialized: true }));

const same = (a, b) => {
  const x = crypto.createHash('sha256').update(String(a)).digest();
  const y = crypto.createHash('sha256').update(String(b)).digest();
  return crypto.timingSafeEqual(x, y);
};

app.get('/', (req, res) => res.send('<p><a href="/login">Log in</a></p>'));
app.get('/login', (req, res) => res.send('<form method="post" action="/login"><input name="user">'
  + '<input name="password" type="password"><button>Log in</button></form>'));
app.post('/login', (req, res) => {
  if (req.body.user === 'alice' && same(req.body.password, password)) {
    req.session.user = 'alice';
    return res.redirect(303, '/account');
  }
  return res.redirect(303, '/login?failed=1');
});
app.get('/account', (req, res) => {
  if (!req.session.user) return res.redirect(302, '/login');
  return res.send(`<p>Hello ${req.session.user}</p>`
    + '<form method="post" action="/transfer"><input name="to"><input name="amount" type="number"><button>Send</button></form>'
    + '<form method="post" action="/logout"><button>Log out</button></form>');
});
app.post('/transfer', (req, res) => {
  if (!req.session.user) return res.redirect(302, '/login');
  return res.redirect(303, '/account');
});
app.post('/logout', (req, res) => req.session.destroy(() => res.redirect(303, '/login')));

const server = app.listen(Number(port), '127.0.0.1', () => console.log(`express: listening on ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

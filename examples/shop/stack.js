// examples/shop/stack.js - starts the demo's three real processes (sessiond,
// the shop, nginx) on free loopback ports under one work directory, and stops
// them again.  `make demo` (demo.js) and the browser tests (tests/e2e/) both
// use it, so the demo a person clicks through is the one the tests drive.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const SHOP_DIR = __dirname;
const ROOT = path.resolve(SHOP_DIR, '..', '..');

// A port the kernel says is free now.  Another process could take it before
// we bind it, so every start below fails loudly rather than hanging.
function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// Start a process and wait until a line on its stderr/stdout matches `ready`.
function startProcess(name, argv, opts, ready, log, timeoutMs = 20000) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = fs.createWriteStream(log, { flags: 'a' });
    let buf = '';
    let done = false;
    const finish = (err, m) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { try { child.kill('SIGKILL'); } catch { /* gone */ } reject(err); } else resolve({ child, match: m });
    };
    const onData = (chunk) => {
      out.write(chunk);
      if (done || !ready) return;
      buf += chunk.toString();
      const m = buf.match(ready);
      if (m) finish(null, m);
      if (buf.length > 65536) buf = buf.slice(-4096);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => finish(new Error(`${name}: cannot start ${argv[0]}: ${e.message}`)));
    child.on('exit', (code, sig) => finish(new Error(`${name} exited (${code ?? sig}) before it was ready; see ${log}`)));
    const timer = setTimeout(() => finish(new Error(`${name} was not ready within ${timeoutMs} ms; see ${log}`)), timeoutMs);
    if (!ready) finish(null, null);
  });
}

function stopProcess(child, timeoutMs = 5000) {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

// A self-signed certificate for the TLS profile, made with openssl.
function makeCert(work, hosts) {
  const key = path.join(work, 'tls.key');
  const crt = path.join(work, 'tls.crt');
  const san = hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '2', '-subj', '/CN=sessiond demo shop', '-addext', `subjectAltName=${san}`,
    '-keyout', key, '-out', crt], { stdio: 'ignore' });
  fs.chmodSync(key, 0o600);
  return { key, crt };
}

/**
 * start({ buildDir, work, env, tls, host, sets, shopEnv }) -> stack
 *   buildDir  where sessiond and sessctl are (default ROOT/build)
 *   work      a directory for the store, keys, logs and nginx's files
 *   env       sessiond's server.env (development, staging, production)
 *   tls       nginx terminates TLS with a fresh self-signed certificate
 *   sets      extra `--set KEY=VALUE` for sessiond (short rotation in tests)
 * The stack has url (what the browser opens), the ports, logs, and stop().
 */
async function start(opts = {}) {
  const buildDir = path.resolve(opts.buildDir || process.env.SESSIOND_BUILD_DIR || path.join(ROOT, 'build'));
  const sessiondBin = opts.sessiond || process.env.SESSIOND_BIN || path.join(buildDir, 'sessiond');
  const sessctlBin = opts.sessctl || process.env.SESSCTL_BIN || path.join(buildDir, 'sessctl');
  const env = opts.env || 'development';
  const tls = !!opts.tls;
  const host = opts.host || '127.0.0.1';
  const work = path.resolve(opts.work || fs.mkdtempSync('/tmp/sessiond-shop-'));
  fs.mkdirSync(work, { recursive: true });
  const logs = {
    sessiond: path.join(work, 'sessiond.log'),
    shop: path.join(work, 'shop.log'),
    nginx: path.join(work, 'nginx.log'),
  };
  const stack = { work, logs, env, tls, children: [] };
  stack.stop = async () => {
    for (const c of stack.children.reverse()) await stopProcess(c);
    stack.children = [];
  };

  try {
    for (const bin of [sessiondBin]) {
      if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: build first (make)`);
    }
    const keys = path.join(work, 'keys');
    if (env !== 'development' && !fs.existsSync(keys)) {
      // Outside development sessiond refuses to invent keys: make one as an operator would.
      execFileSync(sessctlBin, ['keys', 'generate', '--dir', keys], { stdio: 'ignore' });
    }

    // 1. sessiond, trusting only nginx (on loopback) for X-Forwarded-For.
    const argv = [sessiondBin, '--listen', '127.0.0.1:0', '--store', `lmdb:${path.join(work, 'sessions')}`,
      '--keys', keys, '--env', env];
    const ini = path.join(SHOP_DIR, 'sessiond.ini');
    if (fs.existsSync(ini)) argv.push('--config', ini);
    argv.push('--set', 'binding.trusted_proxies=127.0.0.1');
    for (const s of opts.sets || []) argv.push('--set', s);
    const sd = await startProcess('sessiond', argv, { cwd: work, env: { ...process.env } },
      /sessiond: listening on http:\/\/[^\s:/]+:(\d+)/, logs.sessiond);
    stack.children.push(sd.child);
    stack.sessiondPort = Number(sd.match[1]);
    stack.sessiondUrl = `http://127.0.0.1:${stack.sessiondPort}`;

    // 2. the shop, which learns the session cookie's name from the profile.
    const cookieName = opts.cookieName || (env === 'development' ? 'sessiond' : '__Host-sessiond');
    const shop = await startProcess('shop', [process.execPath, path.join(SHOP_DIR, 'server.js')], {
      cwd: SHOP_DIR,
      env: {
        ...process.env, ...(opts.shopEnv || {}),
        SHOP_LISTEN: '127.0.0.1:0', SESSIOND_URL: stack.sessiondUrl, SESSION_COOKIE: cookieName,
      },
    }, /shop: listening on http:\/\/127\.0\.0\.1:(\d+)/, logs.shop);
    stack.children.push(shop.child);
    stack.shopPort = Number(shop.match[1]);

    // 3. nginx in front of both.
    stack.port = opts.port || await freePort(host);
    let tlsLines = '';
    if (tls) {
      const c = makeCert(work, [host, 'localhost']);
      stack.cert = c.crt;
      tlsLines = `        ssl_certificate     ${c.crt};\n        ssl_certificate_key ${c.key};\n` +
        '        ssl_protocols TLSv1.2 TLSv1.3;';
    }
    const conf = fs.readFileSync(path.join(SHOP_DIR, 'nginx.conf.in'), 'utf8')
      .replaceAll('@WORK@', work)
      .replaceAll('@SESSIOND_PORT@', String(stack.sessiondPort))
      .replaceAll('@SHOP_PORT@', String(stack.shopPort))
      .replaceAll('@LISTEN@', `${host}:${stack.port}${tls ? ' ssl' : ''}`)
      .replaceAll('@HOST@', host)
      .replaceAll('@TLS@', tlsLines);
    const confPath = path.join(work, 'nginx.conf');
    fs.writeFileSync(confPath, conf);
    const nginxBin = opts.nginx || process.env.NGINX_BIN || '/usr/sbin/nginx';
    const ng = await startProcess('nginx', [nginxBin, '-p', work, '-c', confPath, '-e', logs.nginx],
      { cwd: work }, null, logs.nginx);
    stack.children.push(ng.child);
    await waitForPort(host, stack.port, ng.child, logs.nginx);
    stack.url = `${tls ? 'https' : 'http'}://${host}:${stack.port}`;
    return stack;
  } catch (e) {
    await stack.stop();
    throw e;
  }
}

async function waitForPort(host, port, child, log, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}); see ${log}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, host, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${host}:${port}; see ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

module.exports = { start, freePort, ROOT, SHOP_DIR };

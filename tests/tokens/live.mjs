// live.mjs - tokens minted by a running sessiond (POST /v1/tokens) verified
// unchanged by npm jose (6.x) against the daemon's live JWKS
// (createRemoteJWKSet on /.well-known/jwks.json, found through
// /.well-known/oauth-authorization-server), for each tokens.alg (EdDSA,
// Ed25519, ES256, RS256), and across a key rotation done by the runbook
// (sessctl keys generate, SIGHUP, sessctl keys rotate, SIGHUP): the token
// signed before the rotation and the one after both verify.  Also: the
// JWKS answers 304 to If-None-Match with its ETag.
// Exits 77 (skipped) when jose is not installed (npm ci in tests/tokens).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

let jose;
try {
  jose = await import('jose');
} catch {
  console.log('SKIP: npm jose not installed (cd tests/tokens && npm ci)');
  process.exit(77);
}

const args = process.argv.slice(2);
const arg = (name) => args[args.indexOf(name) + 1];
const SESSIOND = resolve(arg('--sessiond'));
const SESSCTL = resolve(arg('--sessctl'));
const AUD = 'api.example.com';
const CLIENT = { ip: '203.0.113.7', user_agent: 'jose-live/1.0' };
const work = mkdtempSync(join(tmpdir(), 'sess-live-'));
let checks = 0;
const daemons = [];

function fail(what) {
  console.error(`FAIL: ${what}`);
  for (const d of daemons) d.proc.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
  process.exit(1);
}

function must(cond, what) {
  if (!cond) fail(what);
  checks++;
}

// Start sessiond in "dir" and resolve with its base URL once it listens.
function start(dir, sets) {
  const argv = ['--listen', '127.0.0.1:0', '--store', 'memory:', '--keys', join(dir, 'keys')];
  for (const s of sets) argv.push('--set', s);
  const proc = spawn(SESSIOND, argv, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const d = { proc, log: '' };
  daemons.push(d);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('sessiond did not start')), 20000);
    proc.stderr.on('data', (b) => {
      d.log += b.toString();
      const m = d.log.match(/listening on (http:\/\/[^\s]+)/);
      if (m && !d.url) {
        d.url = m[1];
        clearTimeout(timer);
        resolve(d);
      }
    });
    proc.on('exit', (code) => reject(new Error(`sessiond exited ${code}: ${d.log}`)));
  });
}

async function post(d, path, body) {
  const r = await fetch(d.url + path, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

async function mint(d) {
  const s = await post(d, '/v1/sessions', { user_id: 'alice', client: CLIENT,
                                            data: { roles: ['admin'] } });
  must(s.status === 201, `create: ${s.status}`);
  const t = await post(d, '/v1/tokens', { session_id: s.json.session_id, client: CLIENT,
                                          audience: AUD });
  must(t.status === 200, `mint: ${t.status} ${JSON.stringify(t.json)}`);
  return t.json.access_token;
}

async function verify(d, token, alg, what) {
  const meta = await (await fetch(d.url + '/.well-known/oauth-authorization-server')).json();
  // A fresh key set each time: what a verifier sees after its cache expired.
  const jwks = jose.createRemoteJWKSet(new URL(meta.jwks_uri));
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
      issuer: meta.issuer, audience: AUD, typ: 'at+jwt', algorithms: [alg],
    });
    must(protectedHeader.alg === alg, `${what}: alg ${protectedHeader.alg}`);
    must(payload.sub === 'alice' && payload.roles?.[0] === 'admin', `${what}: claims`);
  } catch (e) {
    fail(`${what}: jose refused the token: ${e.code || ''} ${e.message}`);
  }
}

function waitExit(d) {
  return new Promise((resolve) => {
    if (d.proc.exitCode !== null) resolve(d.proc.exitCode);
    else d.proc.on('exit', (c) => resolve(c));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const alg of ['EdDSA', 'Ed25519', 'ES256', 'RS256']) {
  const dir = mkdtempSync(join(work, alg + '-'));
  const d = await start(dir, ['tokens.claims=roles', `tokens.alg=${alg}`, 'tokens.jwks_max_age=0']);
  const before = await mint(d);
  await verify(d, before, alg, `${alg} token`);

  const r1 = await fetch(d.url + '/.well-known/jwks.json');
  const etag = r1.headers.get('etag');
  const r2 = await fetch(d.url + '/.well-known/jwks.json', { headers: { 'If-None-Match': etag } });
  must(r2.status === 304, `${alg}: If-None-Match gave ${r2.status}`);

  if (alg === 'EdDSA' || alg === 'ES256') {
    // The rotation runbook: generate a next key, publish it (SIGHUP),
    // rotate once verifiers' caches can know it, SIGHUP again.
    const type = alg === 'ES256' ? 'p256' : 'ed25519';
    const sig = join(dir, 'var', 'sigkeys');
    let p = spawnSync(SESSCTL, ['keys', 'generate', '--use', 'sig', '--type', type, '--dir', sig],
                      { encoding: 'utf8' });
    must(p.status === 0, `keys generate: ${p.stderr}`);
    d.proc.kill('SIGHUP');
    await sleep(500);
    p = spawnSync(SESSCTL, ['keys', 'rotate', '--use', 'sig', '--max-age', '0', '--dir', sig],
                  { encoding: 'utf8' });
    must(p.status === 0, `keys rotate: ${p.stderr}`);
    d.proc.kill('SIGHUP');
    let after = before;
    const kidBefore = jose.decodeProtectedHeader(before).kid;
    for (let i = 0; i < 50; i++) {
      after = await mint(d);
      if (jose.decodeProtectedHeader(after).kid !== kidBefore) break;
      await sleep(100);
    }
    must(jose.decodeProtectedHeader(after).kid !== kidBefore, `${alg}: rotation did not take`);
    await verify(d, before, alg, `${alg} token signed before the rotation`);
    await verify(d, after, alg, `${alg} token signed after the rotation`);
  }
  d.proc.kill('SIGTERM');
  const code = await waitExit(d);
  must(code === 0, `${alg}: sessiond exit ${code}`);
}

rmSync(work, { recursive: true, force: true });
console.log(`ok: ${checks} checks`);

// interop.mjs - sessiond's tokens against an independent JWT library, npm
// jose (6.x), both ways:
//   1. tokens signed by libsess (tests/tokens/jwt_helper, the daemon's code
//      path: sess_sigkeys_load_dir + sess_jwt_sign) verify unchanged with
//      jose.jwtVerify against the JWKS libsess publishes, for Ed25519
//      (alg EdDSA, and Ed25519 with the RFC 9864 name), ES256 and RS256,
//      and across a key rotation (old and new tokens both verify);
//   2. tokens jose signs with keys it generated verify with
//      `sessctl token verify --jwks FILE -`, and attacks crafted with jose
//      and node:crypto (alg none, HMAC keyed with our public key, crit,
//      wrong aud/iss/typ, expired, unknown kid, wrong key, DER ECDSA,
//      padding, duplicate members, over 8 KiB) are refused with the
//      expected reason.
// Exits 77 (skipped) when jose is not installed (npm ci in tests/tokens).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import crypto from 'node:crypto';

let jose;
try {
  jose = await import('jose');
} catch {
  console.log('SKIP: npm jose not installed (cd tests/tokens && npm ci)');
  process.exit(77);
}

const args = process.argv.slice(2);
const arg = (name) => args[args.indexOf(name) + 1];
const HELPER = arg('--helper');
const SESSCTL = arg('--sessctl');
const ISS = 'https://sessiond.test';
const AUD = 'api.test';
const work = mkdtempSync(join(tmpdir(), 'sess-jose-'));
let checks = 0;

function run(cmd, argv, input) {
  const r = spawnSync(cmd, argv, { input, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function must(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    rmSync(work, { recursive: true, force: true });
    process.exit(1);
  }
  checks++;
}

function claims(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISS, sub: 'alice', aud: AUD, iat: now, nbf: now, exp: now + 300,
           jti: crypto.randomUUID(), sid: 'handle-1', roles: ['admin'], ...extra };
}

function ourSign(dir, c, nameFlag) {
  const r = run(HELPER, ['sign', dir, ...(nameFlag ? ['--ed25519-name'] : [])],
                JSON.stringify(c));
  must(r.code === 0, `jwt_helper sign ${dir}: ${r.err}`);
  return r.out.trim();
}

function ourJwks(dir, nameFlag) {
  const r = run(HELPER, ['jwks', dir, ...(nameFlag ? ['--ed25519-name'] : [])]);
  must(r.code === 0, `jwt_helper jwks: ${r.err}`);
  return JSON.parse(r.out);
}

function sessctl(...a) {
  return run(SESSCTL, a);
}

// ---- sessctl usage errors (exit 2) -------------------------------------
for (const argv of [['keys', 'generate', '--type', 'rsa', '--dir', join(work, 'u')],
                    ['keys', 'generate', '--use', 'sig', '--type', 'dsa', '--dir', join(work, 'u')],
                    ['keys', 'rotate', '--use', 'enc', '--dir', join(work, 'u')],
                    ['keys', 'rotate', '--use', 'sig', '--max-age', '-1', '--dir', join(work, 'u')],
                    ['token', 'verify', '-'],
                    ['token', 'verify', '--jwks', 'x', '--dir', 'y', '-']]) {
  const r = sessctl(...argv);
  must(r.code === 2, `sessctl ${argv.join(' ')} is a usage error: exit ${r.code} ${r.err}`);
}

// ---- 1. our tokens, jose verifies --------------------------------------
for (const [type, alg, nameFlag] of [['ed25519', 'EdDSA', false],
                                     ['ed25519', 'Ed25519', true],
                                     ['p256', 'ES256', false],
                                     ['rsa', 'RS256', false]]) {
  const dir = join(work, `keys-${alg}`);
  const g = sessctl('keys', 'generate', '--use', 'sig', '--type', type, '--dir', dir);
  must(g.code === 0, `sessctl keys generate ${type}: ${g.err}`);
  const jwks = ourJwks(dir, nameFlag);
  must(jwks.keys.length === 1 && jwks.keys[0].use === 'sig' && jwks.keys[0].alg === alg,
       `JWKS for ${alg}: ${JSON.stringify(jwks)}`);
  must(!('d' in jwks.keys[0]), 'no private member in the JWKS');
  const token = ourSign(dir, claims(), nameFlag);
  let res;
  try {
    res = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks),
                               { issuer: ISS, audience: AUD, typ: 'at+jwt', algorithms: [alg] });
  } catch (e) {
    must(false, `jose refused our ${alg} token: ${e.code} ${e.message}`);
  }
  must(res.protectedHeader.alg === alg && res.protectedHeader.kid === jwks.keys[0].kid &&
       res.protectedHeader.typ === 'at+jwt', `header of our ${alg} token`);
  must(res.payload.sub === 'alice' && res.payload.roles[0] === 'admin', 'claims survive');
  // The thumbprint kid is the RFC 7638 thumbprint jose computes.
  must(await jose.calculateJwkThumbprint(jwks.keys[0]) === jwks.keys[0].kid,
       `kid of ${alg} is its RFC 7638 thumbprint`);
  // And sessctl accepts it too, from stdin.
  writeFileSync(join(work, 'our.jwks'), JSON.stringify(jwks));
  const v = run(SESSCTL, ['token', 'verify', '--jwks', join(work, 'our.jwks'),
                          '--audience', AUD, '--issuer', ISS, '-'], token);
  must(v.code === 0 && JSON.parse(v.out).sub === 'alice', `sessctl verifies ${alg}: ${v.err}`);
}

// ---- rotation: a token from the old key and one from the new both verify
{
  const dir = join(work, 'rotate');
  must(sessctl('keys', 'generate', '--use', 'sig', '--dir', dir).code === 0, 'gen A');
  const oldToken = ourSign(dir, claims());
  must(sessctl('keys', 'generate', '--use', 'sig', '--type', 'p256', '--dir', dir).code === 0, 'gen B');
  // The next key is published but does not sign yet.
  const during = ourJwks(dir);
  must(during.keys.length === 2, 'next key published before it signs');
  const early = sessctl('keys', 'rotate', '--dir', dir);
  must(early.code === 1 && /max-age/.test(early.err), 'rotate refused before max-age');
  must(sessctl('keys', 'rotate', '--max-age', '0', '--dir', dir).code === 0, 'rotate');
  const newToken = ourSign(dir, claims());
  const after = ourJwks(dir);
  must(after.keys.length === 2, 'retired key still published');
  const set = jose.createLocalJWKSet(after);
  for (const [t, alg] of [[oldToken, 'EdDSA'], [newToken, 'ES256']]) {
    try {
      const r = await jose.jwtVerify(t, set, { issuer: ISS, audience: AUD });
      must(r.protectedHeader.alg === alg, `token by ${alg} after rotation`);
    } catch (e) {
      must(false, `jose refused a ${alg} token across the rotation: ${e.message}`);
    }
  }
}

// ---- 2. jose signs, sessctl verifies; jose-made attacks are refused ----
const verifyOurs = (jwksPath, token, extra = []) =>
  run(SESSCTL, ['token', 'verify', '--jwks', jwksPath, '--audience', AUD,
                '--issuer', ISS, ...extra, '-'], token);

const keys = {};
const jwks = { keys: [] };
for (const [alg, kid, opts] of [['EdDSA', 'j-ed', { crv: 'Ed25519' }], ['ES256', 'j-ec', {}],
                                ['RS256', 'j-rsa', { modulusLength: 2048 }]]) {
  const kp = await jose.generateKeyPair(alg, { ...opts, extractable: true });
  keys[alg] = { ...kp, kid };
  const pub = await jose.exportJWK(kp.publicKey);
  jwks.keys.push({ ...pub, kid, use: 'sig', alg });
}
const jwksPath = join(work, 'jose.jwks');
writeFileSync(jwksPath, JSON.stringify(jwks));

async function joseToken(alg, c = claims(), header = {}) {
  const k = keys[alg];
  return new jose.SignJWT(c).setProtectedHeader({ alg, kid: k.kid, typ: 'at+jwt', ...header })
    .sign(k.privateKey);
}

for (const alg of ['EdDSA', 'ES256', 'RS256']) {
  const t = await joseToken(alg);
  const r = verifyOurs(jwksPath, t);
  must(r.code === 0 && JSON.parse(r.out).sub === 'alice', `our verify of jose ${alg}: ${r.err}`);
}

const b64 = (x) => Buffer.from(x).toString('base64url');
async function rawEd(header, payload) {
  const input = `${b64(header)}.${b64(payload)}`;
  const pk = crypto.KeyObject.from(keys.EdDSA.privateKey);
  return `${input}.${crypto.sign(null, Buffer.from(input), pk).toString('base64url')}`;
}

const goodHeader = JSON.stringify({ alg: 'EdDSA', kid: 'j-ed', typ: 'at+jwt' });
const goodClaims = JSON.stringify(claims());
const rsaPem = await jose.exportSPKI(keys.RS256.publicKey);
const edX = Buffer.from((await jose.exportJWK(keys.EdDSA.publicKey)).x, 'base64url');
const otherKp = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
const ecInput = `${b64(JSON.stringify({ alg: 'ES256', kid: 'j-ec', typ: 'at+jwt' }))}.${b64(goodClaims)}`;
const derSig = crypto.sign('sha256', Buffer.from(ecInput),
                           crypto.KeyObject.from(keys.ES256.privateKey)).toString('base64url');

const attacks = [
  ['alg none', new jose.UnsecuredJWT(claims()).encode(), 'ALG_NONE'],
  ['HS256 keyed with our RSA public key PEM',
   await new jose.SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'j-rsa', typ: 'at+jwt' })
     .sign(new TextEncoder().encode(rsaPem)), 'ALG'],
  ['HS256 keyed with the Ed25519 public bytes',
   await new jose.SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'j-ed', typ: 'at+jwt' })
     .sign(edX), 'ALG'],
  ['crit', await rawEd(JSON.stringify({ alg: 'EdDSA', kid: 'j-ed', typ: 'at+jwt', crit: ['exp'], exp: 1 }),
                       goodClaims), 'CRIT'],
  ['expired', await joseToken('EdDSA', claims({ exp: Math.floor(Date.now() / 1000) - 120 })), 'EXPIRED'],
  ['not yet valid', await joseToken('EdDSA', claims({ nbf: Math.floor(Date.now() / 1000) + 600 })), 'NOT_YET'],
  ['wrong audience', await joseToken('ES256', claims({ aud: 'other.test' })), 'AUD'],
  ['wrong issuer', await joseToken('RS256', claims({ iss: 'https://evil.test' })), 'ISS'],
  ['typ JWT', await joseToken('EdDSA', claims(), { typ: 'JWT' }), 'TYP'],
  ['unknown kid', await joseToken('EdDSA', claims(), { kid: 'nobody' }), 'KID'],
  ['another key under our kid',
   await new jose.SignJWT(claims()).setProtectedHeader({ alg: 'EdDSA', kid: 'j-ed', typ: 'at+jwt' })
     .sign(otherKp.privateKey), 'SIGNATURE'],
  ['ES256 with a DER signature', `${ecInput}.${derSig}`, 'SIGNATURE'],
  ['ES256 token under the Ed25519 kid',
   await new jose.SignJWT(claims()).setProtectedHeader({ alg: 'ES256', kid: 'j-ed', typ: 'at+jwt' })
     .sign(keys.ES256.privateKey), 'ALG_KEY'],
  ['padded signature', (await joseToken('EdDSA')) + '==', 'BASE64'],
  ['duplicate aud', await rawEd(goodHeader,
     goodClaims.replace('{', '{"aud":"other.test",')), 'CLAIMS'],
  ['over 8 KiB', await joseToken('EdDSA', claims({ pad: 'x'.repeat(9000) })), 'TOO_LONG'],
];
for (const [what, token, reason] of attacks) {
  const r = verifyOurs(jwksPath, token);
  must(r.code === 1 && r.err.includes(`token refused: ${reason}:`),
       `attack "${what}" must be refused with ${reason}, got exit ${r.code}: ${r.err.trim()}`);
  must(!r.err.includes(token.slice(-20)), `the refusal of "${what}" does not echo the token`);
}
// The JWKS we make jose export would be refused if it held private parts.
const leaked = { keys: [{ ...(await jose.exportJWK(keys.EdDSA.privateKey)), kid: 'x' }] };
writeFileSync(join(work, 'leaked.jwks'), JSON.stringify(leaked));
const lr = verifyOurs(join(work, 'leaked.jwks'), await joseToken('EdDSA'));
must(lr.code === 1 && /private or secret/.test(lr.err), 'a JWKS with a private key is refused');

rmSync(work, { recursive: true, force: true });
console.log(`jose interop: ${checks} checks passed (jose ${(await import('jose/package.json', { with: { type: 'json' } }).catch(() => ({ default: { version: '6.x' } }))).default.version})`);

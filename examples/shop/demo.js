#!/usr/bin/env node
// examples/shop/demo.js - `make demo`: sessiond (embedded LMDB under ./var/demo,
// development environment), the shop and nginx on loopback; prints the URL and
// stops all three on Ctrl-C.  Options: --tls (nginx terminates TLS with a
// throw-away certificate, sessiond in production with the __Host- cookie),
// --port N (nginx's port; default a free one), --build DIR.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { start, ROOT } = require('./stack');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

(async () => {
  const tls = process.argv.includes('--tls');
  const work = path.join(ROOT, 'var', tls ? 'demo-tls' : 'demo');
  fs.mkdirSync(work, { recursive: true });
  const stack = await start({
    work, tls, env: tls ? 'production' : 'development',
    buildDir: arg('--build', path.join(ROOT, 'build')),
    port: arg('--port') ? Number(arg('--port')) : undefined,
  });
  console.log(`\n  The demo shop is at ${stack.url}/   (users alice, bob, carol; password "${process.env.DEMO_PASSWORD || 'demo'}")`);
  console.log(`  sessiond: ${stack.sessiondUrl}   logs and store: ${work}`);
  console.log('  Ctrl-C stops sessiond, nginx and the shop.\n');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await stack.stop();
    console.log('demo: stopped');
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // If one of the three dies, stop the others and say which.
  for (const c of stack.children) {
    c.once('exit', (code, sig) => {
      if (!stopping) { console.error(`demo: ${path.basename(c.spawnfile)} exited (${code ?? sig}); see ${work}`); stop(); }
    });
  }
})().catch((e) => { console.error(`demo: ${e.message}`); process.exit(1); });

// tests/audit/shop_stack.js - starts the demo shop's real stack (sessiond,
// the shop, nginx: examples/shop/stack.js) for test_audit.py and prints one
// JSON line {url, sessiondUrl, cert, work}; stops it on SIGTERM or when
// stdin closes (the test died).  argv[2] is a JSON object of start()
// options plus "weakness" (SHOP_WEAKNESS).
'use strict';
const path = require('node:path');
const stack = require(path.join(__dirname, '..', '..', 'examples', 'shop', 'stack.js'));

(async () => {
  const opts = JSON.parse(process.argv[2] || '{}');
  if (opts.weakness) opts.shopEnv = { ...(opts.shopEnv || {}), SHOP_WEAKNESS: opts.weakness };
  let s;
  try {
    s = await stack.start(opts);
  } catch (e) {
    console.error(`shop_stack: ${e.message}`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ url: s.url, sessiondUrl: s.sessiondUrl, cert: s.cert || null, work: s.work })}\n`);
  let stopping = false;
  const stop = async () => { if (stopping) return; stopping = true; await s.stop(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
})();

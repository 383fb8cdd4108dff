// verify.js - checks sessiond's webhook signatures with the npm
// standardwebhooks package (an implementation independent of sessiond's):
// reads one JSON object per line on stdin, {"secret": "whsec_...",
// "body": "...", "headers": {...}}, and prints "ok N" once every one
// verifies (timestamp tolerance included), or the first failure and exit 1.
// Run by tests/blackbox/test_events.py.
"use strict";
const { Webhook } = require("standardwebhooks");
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
let n = 0;
for (const line of lines) {
  const m = JSON.parse(line);
  try {
    const payload = new Webhook(m.secret).verify(m.body, m.headers);
    if (!payload || typeof payload.id !== "string") throw new Error("no id in payload");
  } catch (e) {
    console.log("FAIL " + n + ": " + e.message);
    process.exit(1);
  }
  n++;
}
console.log("ok " + n);

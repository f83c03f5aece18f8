#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
// The daemon installs its signal handlers only after ~0.4 s of imports; a SIGTERM/SIGINT/SIGHUP
// before then would kill it with status 143. They are recorded here, first thing, and the daemon
// handles them once it is up (src/daemon/early-signals.ts).
if (process.argv[2] === 'daemon') {
  const pending = [];
  const record = (signal) => pending.push(signal);
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, record);
  globalThis.cmergeEarlySignals = { pending, record };
}
await import('../dist/src/cli/main.js');

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/index.js';
import { freshStore } from './helpers.js';

// .ts under tsx, .js when compiled to dist/ (npm test)
const child = fileURLToPath(new URL(`./wal-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

test('another process reads status while the daemon holds the write lock (WAL)', { timeout: 60_000 }, async () => {
  const { store, dbPath } = freshStore();
  store.enqueue('clip', { name: 'committed', path: '/drop/committed', sha256: 'a'.repeat(64), size: 1 });
  store.close();

  const HOLD = 3000;
  const p = spawn(process.execPath, ['--import', 'tsx', child, dbPath, String(HOLD)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked\n')) resolve();
    });
    p.on('exit', () => reject(new Error(`writer exited early: ${out}`)));
  });

  // readers: the CLI's readonly open and a normal open, both while the write transaction is open
  for (const opts of [{ readonly: true }, {}]) {
    const t0 = performance.now();
    const reader = openStore(dbPath, opts);
    const [st] = reader.status();
    const ms = performance.now() - t0;
    reader.close();
    assert.ok(ms < HOLD / 3, `reading took ${ms.toFixed(0)} ms: blocked by the writer`);
    assert.equal(st!.queued, 1, 'sees the committed row only');
    assert.equal(st!.current_merge, null, 'does not see the uncommitted merge');
  }
  assert.ok(!out.includes('committed\n'), 'the writer was still inside its transaction');

  await once(p, 'exit');
  assert.equal(p.exitCode, 0);
  const after = openStore(dbPath, { readonly: true });
  const [st] = after.status();
  assert.equal(st!.queued, 1);
  assert.equal(st!.current_merge?.checkpoint, 'committed');
  after.close();
});

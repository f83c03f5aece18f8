import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';

// .ts under tsx, .js when compiled to dist/ (npm test)
const child = fileURLToPath(
  new URL(`./crash-child${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);
const KILLS = Number(process.env.CMERGE_CRASH_KILLS ?? 25);
const COUNT = 60;

/** Run the child; kill -9 it `delayMs` after it reports ready (null: let it finish). Resolves with what it printed last. */
function run(db: string, stateDir: string, delayMs: number | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, db, stateDir, String(COUNT)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (delayMs !== null && out.includes('ready\n') && !p.killed) setTimeout(() => p.kill('SIGKILL'), delayMs);
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (signal === 'SIGKILL' || code === 0) resolve(out.trim().split('\n').pop() ?? '');
      else reject(new Error(`child exited ${code}: ${err}`));
    });
  });
}

/** The exactly-once invariants, checked on the database a killed process left behind. */
function checkInvariants(db: string): number {
  const store = openStore(db);
  try {
    assert.deepEqual(store.integrityCheck(), []);
    const all = store.db.prepare(`SELECT id, name, status, step FROM checkpoints ORDER BY id`).all() as {
      id: number;
      name: string;
      status: string;
      step: number | null;
    }[];
    // arrival order was respected when enqueueing
    assert.deepEqual(
      all.map((c) => c.name),
      all.map((_, i) => `ck-${String(i).padStart(3, '0')}`),
    );
    const merged = all.filter((c) => c.status === 'merged');
    const k = merged.length;
    // merged = exactly the first k arrivals, at steps 1..k in arrival order
    assert.deepEqual(
      merged.map((c) => c.step),
      Array.from({ length: k }, (_, i) => i + 1),
    );
    assert.deepEqual(
      merged.map((c) => c.name),
      all.slice(0, k).map((c) => c.name),
    );
    assert.ok(
      all.slice(k).every((c) => c.status === 'queued' || c.status === 'merging'),
      'nothing after the merged prefix is merged',
    );
    assert.ok(all.filter((c) => c.status === 'merging').length <= 1);
    assert.equal(all.filter((c) => c.status === 'rejected').length, 0);
    // one committed merge per merged checkpoint
    const committed = store.merges('crash').filter((m) => m.status === 'committed');
    assert.equal(committed.length, k);
    assert.equal(new Set(committed.map((m) => m.checkpoint_id)).size, k);
    assert.ok(store.merges('crash').filter((m) => m.status === 'running').length <= 1);
    // the referenced state holds each merged checkpoint exactly once, in order
    const state = store.currentStateGeneration('crash');
    if (k === 0) assert.equal(state, null);
    else {
      assert.equal(state!.step, k);
      assert.deepEqual(
        JSON.parse(readFileSync(state!.path, 'utf8')),
        merged.map((c) => c.name),
      );
    }
    // versions: 1..v with v = k or k - 1 (killed between commit and publication)
    const versions = store.versions('crash').map((v) => v.number);
    assert.ok(versions.length === k || versions.length === k - 1, `${versions.length} versions for ${k} merges`);
    assert.deepEqual(
      versions,
      Array.from({ length: versions.length }, (_, i) => i + 1),
    );
    return k;
  } finally {
    store.close();
  }
}

test(
  `kill -9 at random points (${KILLS} times): every checkpoint merged exactly once, in order`,
  { timeout: 240_000 },
  async (t) => {
    const dir = tempDir('cmerge-crash-');
    const db = join(dir, 'cmerge.sqlite');
    const stateDir = join(dir, 'states');
    mkdirSync(stateDir);
    const progress: number[] = [];
    let interrupted = 0;
    for (let i = 0; i < KILLS; i++) {
      const last = await run(db, stateDir, Math.floor(Math.random() * 40));
      if (last === 'done') break;
      progress.push(checkInvariants(db));
      const s = openStore(db);
      interrupted += s.merges('crash').filter((m) => m.status === 'running').length;
      s.close();
    }
    assert.equal(await run(db, stateDir, null), 'done');
    assert.equal(checkInvariants(db), COUNT);
    const s = openStore(db);
    assert.equal(s.versions('crash').length, COUNT);
    assert.equal(s.queued('crash').length, 0);
    assert.deepEqual(s.retentionMatrix('crash').length, COUNT);
    s.close();
    assert.ok(existsSync(db));
    // the kills must have landed mid-run, not all before or after the work
    assert.ok(
      progress.some((k) => k > 0 && k < COUNT),
      `progress after kills: ${progress.join(',')}`,
    );
    t.diagnostic(`merged after each kill: ${progress.join(' ')}; kills that hit a running merge: ${interrupted}`);
  },
);

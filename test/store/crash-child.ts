/**
 * Child process of crash.test.ts: the daemon's store protocol at full speed, to be killed -9 at
 * random points. Each loop enqueues the next arrivals (idempotent across restarts), then merges
 * the head: markMerging → write the new state file (tmp, fsync, rename, fsync dir) → commitMerge
 * → recordVersion. The "merge state" is the list of checkpoint names folded in so far, so a
 * checkpoint merged twice or out of order would show in the state file itself.
 *
 * usage: node --import tsx crash-child.ts <db> <stateDir> <count>
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/store/index.js';

const [dbPath, stateDir, countArg] = process.argv.slice(2) as [string, string, string];
const count = Number(countArg);
const P = 'crash';
const name = (i: number) => `ck-${String(i).padStart(3, '0')}`;

function writeDurably(path: string, data: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, data);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
  const dir = openSync(stateDir, 'r');
  fsyncSync(dir);
  closeSync(dir);
}

const store = openStore(dbPath);
store.recoverInterrupted();

/** redo a publication lost between commitMerge and recordVersion */
function publish(mergeId: number, step: number): void {
  store.recordVersion({
    pipeline: P,
    number: step,
    parent: step > 1 ? step - 1 : null,
    merge_id: mergeId,
    path: `/repo/${P}/${step}`,
    files: { 'model.safetensors': String(step).padStart(64, '0') },
    manifest_sha256: 'm'.repeat(64),
  });
}
const lost = store.unpublishedMerge(P);
if (lost) publish(lost.id, lost.step);

process.stdout.write('ready\n');
let arrived = 0;
for (;;) {
  // two arrivals per merge so the queue builds up; re-enqueueing after a restart is a no-op
  for (let k = 0; k < 2 && arrived < count; k++, arrived++) {
    const r = store.enqueue(P, {
      name: name(arrived),
      path: `/drop/${name(arrived)}`,
      sha256: String(arrived).padStart(64, 'a'),
      size: arrived,
    });
    if (r.outcome === 'duplicate') throw new Error(`unexpected duplicate ${name(arrived)}`);
  }
  const head = store.nextQueued(P);
  if (!head) {
    if (arrived < count) continue;
    break;
  }
  const { merge } = store.markMerging(head.id, { method: 'opcm', params: { alpha: 0.5 }, engine: 'portable' });
  const cur = store.currentStateGeneration(P);
  const prev = cur ? (JSON.parse(readFileSync(cur.path, 'utf8')) as string[]) : [];
  const gen = (cur?.generation ?? 0) + 1;
  const path = join(stateDir, `state-${gen}.json`);
  writeDurably(path, JSON.stringify([...prev, head.name]));
  store.commitMerge({
    merge_id: merge.id,
    state: { generation: gen, path },
    scalars: { lambda: merge.step },
    tensor_metrics: [
      { tensor: 'a.weight', tv_norm: 1 },
      { tensor: 'b.weight', tv_norm: 2 },
    ],
    model_metrics: { tv_norm: 3 },
    retention: Array.from({ length: merge.step }, (_, i) => ({ task: i + 1, rho: 1 })),
  });
  publish(merge.id, merge.step);
}
store.close();
process.stdout.write('done\n');

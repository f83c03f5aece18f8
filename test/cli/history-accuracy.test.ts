/**
 * `cmerge history` with evaluator accuracies: the real CLI process over a real SQLite store whose
 * merges, versions and evaluations are written through the store API the daemon (and its
 * evaluator hook, Pipeline → store.recordEvaluation) uses.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const CONFIG = `state_dir: ./state
pipelines:
  - name: clip
    base: ./base.safetensors
    drop: ./drop/clip
    repository: ./models
    method: opcm
  - name: idle
    base: ./base.safetensors
    drop: ./drop/idle
    repository: ./models
    method: weight_average
`;

/**
 * What the evaluator printed for each version (binary fractions, so every figure is exact).
 * Task ck-b is not evaluated on version 1, ck-c only on version 3.
 */
const SCORES: Record<string, number>[] = [
  { 'ck-a': 0.75 },
  { 'ck-a': 0.875, 'ck-b': 1 },
  { 'ck-a': 0.625, 'ck-b': 0.75, 'ck-c': 0.875 },
];

/**
 * By hand, with T = 3 and R[t][i] the score of task i after step t:
 * ACC = (0.625 + 0.75 + 0.875) / 3 = 0.75;
 * BWT = ((0.625 − 0.75) + (0.75 − 1)) / 2 = −0.1875;
 * forgetting = ((max(0.75, 0.875) − 0.625) + (1 − 0.75)) / 2 = 0.25.
 */
const CLIP_ACCURACY = {
  steps: [1, 2, 3],
  tasks: ['ck-a', 'ck-b', 'ck-c'],
  matrix: [
    [0.75, null, null],
    [0.875, 1, null],
    [0.625, 0.75, 0.875],
  ],
  average_accuracy: 0.75,
  bwt: -0.1875,
  forgetting: 0.25,
};

const NONE = { steps: [], tasks: [], matrix: [], average_accuracy: null, bwt: null, forgetting: null };

/** Merge the queue head as `step`, publish it as version `step`, and record its evaluation. */
function mergeAndEvaluate(store: Store, root: string, step: number): void {
  const head = store.nextQueued('clip')!;
  const { merge } = store.markMerging(head.id, { method: 'opcm', params: {}, engine: 'portable' });
  assert.equal(merge.step, step);
  store.commitMerge({
    merge_id: merge.id,
    state: { generation: step, path: join(root, 'state', `gen-${step}`), sha256: sha(`state-${step}`) },
    engine: 'portable',
    scalars: { lambda: 1 },
  });
  store.recordVersion({
    pipeline: 'clip',
    number: step,
    parent: step > 1 ? step - 1 : null,
    merge_id: merge.id,
    path: join(root, 'models', 'clip', String(step)),
    files: { 'model.safetensors': sha(`model-${step}`) },
    manifest_sha256: sha(`manifest-${step}`),
  });
  store.recordEvaluation('clip', step, SCORES[step - 1]!);
}

let cfg: string;
before(() => {
  const root = tempDir('cmerge-history-acc-');
  cfg = join(root, 'cmerge.yaml');
  writeFileSync(cfg, CONFIG);
  // the inspection commands refuse a config whose base does not exist; they never read it
  writeFileSync(join(root, 'base.safetensors'), '');
  const store = openStore(loadConfig(cfg).db_path);
  try {
    for (const n of ['a', 'b', 'c']) {
      const name = `ck-${n}.safetensors`;
      store.enqueue('clip', { name, path: join(root, 'drop', 'clip', name), sha256: sha(n), size: 1000 });
    }
    for (const step of [1, 2, 3]) mergeAndEvaluate(store, root, step);
  } finally {
    store.close();
  }
});

test('history --json: per pipeline, the accuracy matrix, ACC, BWT and forgetting, as computed by hand', () => {
  const r = cmerge(['history', '--config', cfg, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout);
  assert.deepEqual(
    out.history.map((e: { step: number; checkpoint: string; version: number }) => [e.step, e.checkpoint, e.version]),
    [
      [1, 'ck-a.safetensors', 1],
      [2, 'ck-b.safetensors', 2],
      [3, 'ck-c.safetensors', 3],
    ],
  );
  assert.deepEqual(out.pipelines, [
    { name: 'clip', accuracy: CLIP_ACCURACY },
    { name: 'idle', accuracy: NONE },
  ]);

  const clip = JSON.parse(cmerge(['history', '--config', cfg, '--pipeline', 'clip', '--json']).stdout);
  assert.deepEqual(clip.pipelines, [{ name: 'clip', accuracy: CLIP_ACCURACY }]);
  const idle = JSON.parse(cmerge(['history', '--config', cfg, '--pipeline', 'idle', '--json']).stdout);
  assert.deepEqual(idle, { history: [], pipelines: [{ name: 'idle', accuracy: NONE }] });
});

test('history text: the matrix (rows steps, columns tasks) and ACC, BWT, forgetting; or no accuracies', () => {
  const r = cmerge(['history', '--config', cfg]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.split('\n');
  const at = lines.indexOf('clip: accuracy (rows: merge step, columns: task)');
  assert.ok(at > 0, r.stdout);
  assert.deepEqual(lines.slice(at + 1, at + 6), [
    'STEP  ck-a   ck-b  ck-c',
    '1     0.75   -     -',
    '2     0.875  1     -',
    '3     0.625  0.75  0.875',
    'ACC 0.75  BWT -0.1875  forgetting 0.25',
  ]);
  assert.match(r.stdout, /^idle: no accuracies recorded$/m);

  const clip = cmerge(['history', '--config', cfg, '--pipeline', 'clip']);
  assert.match(clip.stdout, /^ACC 0\.75 {2}BWT -0\.1875 {2}forgetting 0\.25$/m);
  assert.doesNotMatch(clip.stdout, /idle/);
});

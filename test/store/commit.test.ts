import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SHUTDOWN_REASON, type Store } from '../../src/store/index.js';
import { arrival, freshStore, mergeHead } from './helpers.js';

function snapshot(store: Store) {
  const count = (t: string) => (store.db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
  return {
    tables: ['tensor_metrics', 'model_metrics', 'retention'].map(count),
    statuses: store.db.prepare('SELECT id, status, step FROM checkpoints ORDER BY id').all(),
    merges: store.db.prepare('SELECT id, status FROM merges ORDER BY id').all(),
    pipeline: store.db.prepare('SELECT merged_count, state_generation, state_path FROM pipelines').all(),
  };
}

test('commitMerge records merge, metrics, checkpoint and state generation together', () => {
  const { store } = freshStore();
  store.enqueue('clip', arrival(1));
  store.enqueue('clip', arrival(2));
  assert.equal(store.currentStateGeneration('clip'), null, 'no state: start from the base');
  const m1 = mergeHead(store, 'clip', {
    scalars: { lambda: 1 },
    timings: { pass1: 10, pass2: 12 },
    peak_rss: 123_456,
    tensor_metrics: [
      {
        tensor: 'a.weight',
        kind: 'linear',
        tv_norm: 2,
        merged_norm: 2,
        removed_share: 0,
        interference: null,
        split_rank: 3,
        extra: { s0: 1.5 },
      },
      { tensor: 'a.bias', kind: 'other', tv_norm: 0.5 },
    ],
    model_metrics: { tv_norm: 2.1, lambda: 1 },
    retention: [{ task: 1, rho: 1 }],
  });
  assert.equal(m1.status, 'committed');
  assert.deepEqual(m1.timings, { pass1: 10, pass2: 12 });
  assert.equal(m1.peak_rss, 123_456);
  assert.deepEqual(store.currentStateGeneration('clip'), {
    generation: 1,
    path: 'states/clip/1',
    sha256: null,
    step: 1,
  });
  const c = store.mergedCheckpoints('clip');
  assert.deepEqual(
    c.map((x) => [x.name, x.step, x.status]),
    [['ck-1.safetensors', 1, 'merged']],
  );
  assert.ok(c[0]!.merged_at);
  assert.deepEqual(store.modelMetrics(m1.id), { lambda: 1, tv_norm: 2.1 });
  const tm = store.tensorMetrics(m1.id);
  assert.equal(tm.length, 2);
  assert.deepEqual(tm.find((t) => t.tensor === 'a.weight')!.extra, { s0: 1.5 });
  const m2 = mergeHead(store, 'clip', {
    retention: [
      { task: 1, rho: 0.8 },
      { task: 2, rho: 0.9 },
    ],
  });
  assert.equal(m2.step, 2);
  assert.deepEqual(store.retentionMatrix('clip'), [
    [1, null],
    [0.8, 0.9],
  ]);
  assert.equal(store.currentStateGeneration('clip')!.generation, 2);
  store.close();
});

test('a failing statement inside commitMerge rolls everything back', () => {
  const { store } = freshStore();
  store.enqueue('clip', arrival(1));
  const head = store.nextQueued('clip')!;
  const { merge } = store.markMerging(head.id, { method: 'opcm', params: {} });
  const before = snapshot(store);
  // the second tensor row violates the (merge, tensor) primary key after rows were already written
  assert.throws(
    () =>
      store.commitMerge({
        merge_id: merge.id,
        state: { generation: 1, path: 's/1' },
        model_metrics: { x: 1 },
        tensor_metrics: [{ tensor: 'w' }, { tensor: 'w' }],
      }),
    /UNIQUE|PRIMARY KEY/,
  );
  assert.deepEqual(snapshot(store), before);
  // a retention entry out of range fails after every other write of the transaction
  assert.throws(
    () =>
      store.commitMerge({
        merge_id: merge.id,
        state: { generation: 1, path: 's/1' },
        model_metrics: { x: 1 },
        retention: [{ task: 2, rho: 1 }],
      }),
    /outside 1..1/,
  );
  assert.deepEqual(snapshot(store), before);
  assert.equal(store.checkpoint(head.id)!.status, 'merging');
  assert.equal(store.currentStateGeneration('clip'), null);
  // and the merge can still be committed properly
  store.commitMerge({ merge_id: merge.id, state: { generation: 1, path: 's/1' } });
  assert.equal(store.checkpoint(head.id)!.status, 'merged');
  assert.deepEqual(store.integrityCheck(), []);
  store.close();
});

test('commitMerge refuses a stale state generation and a second commit', () => {
  const { store } = freshStore();
  for (let i = 1; i <= 2; i++) store.enqueue('clip', arrival(i));
  const m1 = mergeHead(store, 'clip');
  assert.throws(() => store.commitMerge({ merge_id: m1.id, state: { generation: 5, path: 'x' } }), /not running/);
  const { merge } = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {} });
  assert.throws(
    () => store.commitMerge({ merge_id: merge.id, state: { generation: 1, path: 'old' } }),
    /above the current 1/,
  );
  store.commitMerge({ merge_id: merge.id, state: { generation: 7, path: 'g7', sha256: 'ab' } });
  assert.deepEqual(store.currentStateGeneration('clip'), { generation: 7, path: 'g7', sha256: 'ab', step: 2 });
  store.close();
});

test('failMerge rejects the checkpoint; abandonMerge requeues it at the head', () => {
  const { store } = freshStore();
  for (let i = 1; i <= 3; i++) store.enqueue('clip', arrival(i));
  const a = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {} }).merge;
  store.failMerge(a.id, 'task vector norm 1e9 exceeds 10 × base norm', '/drop/.quarantine/ck-1.safetensors');
  assert.equal(store.merge(a.id)!.status, 'failed');
  assert.deepEqual(
    store.rejected('clip').map((c) => c.reason),
    ['task vector norm 1e9 exceeds 10 × base norm'],
  );
  const b = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {} }).merge;
  assert.equal(b.step, 1, 'a failed merge does not use up a step');
  store.abandonMerge(b.id, 'shutdown budget spent');
  assert.equal(store.nextQueued('clip')!.id, b.checkpoint_id);
  assert.equal(store.merge(b.id)!.status, 'interrupted');
  assert.throws(() => store.abandonMerge(b.id, 'again'), /not running/);
  store.close();
});

test('versions: record, parent, latest, pin, removal; unpublished merge detection', () => {
  const { store } = freshStore();
  for (let i = 1; i <= 3; i++) store.enqueue('clip', arrival(i));
  const m1 = mergeHead(store, 'clip');
  assert.equal(store.unpublishedMerge('clip')!.id, m1.id, 'crash between commit and publication is visible');
  const files = { 'model.safetensors': 'f'.repeat(64), 'README.md': 'e'.repeat(64) };
  const v1 = store.recordVersion({
    pipeline: 'clip',
    number: 1,
    parent: null,
    merge_id: m1.id,
    path: '/repo/clip/1',
    files,
    manifest_sha256: 'd'.repeat(64),
  });
  assert.deepEqual([v1.number, v1.parent, v1.step, v1.pinned, v1.removed_at], [1, null, 1, false, null]);
  assert.deepEqual(v1.files, files);
  assert.equal(store.unpublishedMerge('clip'), null);
  assert.throws(
    () =>
      store.recordVersion({
        pipeline: 'clip',
        number: 1,
        parent: null,
        merge_id: m1.id,
        path: 'x',
        files,
        manifest_sha256: 'x',
      }),
    /must be above/,
  );
  const m2 = mergeHead(store, 'clip');
  assert.throws(
    () =>
      store.recordVersion({
        pipeline: 'clip',
        number: 2,
        parent: 9,
        merge_id: m2.id,
        path: 'x',
        files,
        manifest_sha256: 'x',
      }),
    /parent version 9/,
  );
  store.recordVersion({
    pipeline: 'clip',
    number: 2,
    parent: 1,
    merge_id: m2.id,
    path: '/repo/clip/2',
    files,
    manifest_sha256: 'x',
  });
  const running = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {} }).merge;
  assert.throws(
    () =>
      store.recordVersion({
        pipeline: 'clip',
        number: 3,
        parent: 2,
        merge_id: running.id,
        path: 'x',
        files,
        manifest_sha256: 'x',
      }),
    /not a committed merge/,
  );
  assert.equal(store.latestVersion('clip')!.number, 2);
  store.pin('clip', 1);
  assert.deepEqual(store.pinnedVersions('clip'), [1]);
  store.unpin('clip', 1);
  store.markRemoved('clip', 1);
  assert.deepEqual(
    store.versions('clip').map((v) => v.number),
    [2],
  );
  assert.deepEqual(
    store.versions('clip', { includeRemoved: true }).map((v) => [v.number, v.removed_at !== null]),
    [
      [1, true],
      [2, false],
    ],
  );
  assert.throws(() => store.pin('clip', 7), /no version 7/);
  store.close();
});

test('status, history and show answer the inspection questions', () => {
  const { store } = freshStore();
  for (let i = 1; i <= 3; i++) store.enqueue('clip', arrival(i));
  store.reject(
    'clip',
    { name: 'bad', path: '/drop/bad' },
    'shape mismatch: a.weight [2,3] vs base [3,3]',
    '/drop/.quarantine/bad',
  );
  const files = { 'model.safetensors': 'f'.repeat(64) };
  for (let n = 1; n <= 2; n++) {
    const m = mergeHead(store, 'clip', {
      scalars: { lambda: n },
      model_metrics: { tv_norm: n },
      tensor_metrics: [{ tensor: 'w', tv_norm: n }],
      retention: Array.from({ length: n }, (_, i) => ({ task: i + 1, rho: 1 / (i + 1) })),
    });
    store.recordVersion({
      pipeline: 'clip',
      number: n,
      parent: n > 1 ? n - 1 : null,
      merge_id: m.id,
      path: `/repo/clip/${n}`,
      files,
      manifest_sha256: 'x',
    });
    store.recordNotification('clip', n, {
      notifier: 'http#0',
      attempt: 1,
      ok: false,
      detail: 'ECONNREFUSED',
      duration_ms: 3.4,
    });
    store.recordNotification('clip', n, { notifier: 'http#0', attempt: 2, ok: true, detail: '200 OK' });
    store.recordEvaluation('clip', n, n === 1 ? { 'ck-1': 0.9 } : { 'ck-1': 0.8, 'ck-2': 0.7 });
  }
  const attempt = () =>
    store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: { alpha: 0.5 } }).merge;
  assert.equal(store.status(['clip'])[0]!.retrying, null);
  // step 3: a failed attempt, one given up for a shutdown (not a failure), then one running
  store.abandonMerge(attempt().id, 'ENOSPC: no space left on device');
  store.abandonMerge(attempt().id, SHUTDOWN_REASON);
  attempt();

  const [st] = store.status(['clip']);
  assert.equal(typeof st!.retrying?.last_at, 'string');
  assert.deepEqual(
    {
      ...st!,
      current_merge: { ...st!.current_merge!, started_at: 'x' },
      retrying: { ...st!.retrying!, last_at: 'x' },
      rejected: st!.rejected.map((r) => ({ name: r.name, reason: r.reason })),
    },
    {
      name: 'clip',
      current_version: 2,
      latest_version: 2,
      paused: null,
      merged: 2,
      queued: 0,
      current_merge: { checkpoint: 'ck-3.safetensors', step: 3, method: 'opcm', started_at: 'x', progress: null },
      retrying: {
        checkpoint: 'ck-3.safetensors',
        step: 3,
        attempts: 1,
        last_error: 'ENOSPC: no space left on device',
        last_at: 'x',
      },
      rejected: [{ name: 'bad', reason: 'shape mismatch: a.weight [2,3] vs base [3,3]' }],
      waiting: [],
      // recorded without engine_info: the engine's name is all there is
      engine: { step: 2, info: { name: 'portable' }, gpu: null },
    },
  );

  const h = store.history('clip');
  assert.deepEqual(
    h.map((r) => [r.step, r.status, r.checkpoint, r.version]),
    [
      [1, 'committed', 'ck-1.safetensors', 1],
      [2, 'committed', 'ck-2.safetensors', 2],
      [3, 'interrupted', 'ck-3.safetensors', null],
      [3, 'interrupted', 'ck-3.safetensors', null],
      [3, 'running', 'ck-3.safetensors', null],
    ],
  );
  assert.deepEqual(h[1]!.scalars, { lambda: 2 });
  assert.equal(store.history('other').length, 0);
  assert.equal(store.history().length, 5);

  const d = store.show('clip', 2)!;
  assert.deepEqual(
    d.checkpoints.map((c) => [c.step, c.name]),
    [
      [1, 'ck-1.safetensors'],
      [2, 'ck-2.safetensors'],
    ],
  );
  assert.deepEqual(
    store.show('clip', 1)!.checkpoints.map((c) => c.name),
    ['ck-1.safetensors'],
  );
  assert.deepEqual(d.model_metrics, { tv_norm: 2 });
  assert.equal(d.tensor_metrics[0]!.tv_norm, 2);
  assert.deepEqual(d.retention, [
    { task: 1, rho: 1 },
    { task: 2, rho: 0.5 },
  ]);
  assert.deepEqual(
    d.notifications.map((n) => [n.attempt, n.outcome, n.detail, n.duration_ms]),
    [
      [1, 'failed', 'ECONNREFUSED', 3],
      [2, 'ok', '200 OK', null],
    ],
  );
  assert.deepEqual(
    d.evaluations.map((e) => [e.task, e.score]),
    [
      ['ck-1', 0.8],
      ['ck-2', 0.7],
    ],
  );
  assert.equal(store.show('clip', 9), null);
  JSON.stringify(d); // --json prints it as is

  const acc = store.accuracySummary('clip');
  assert.deepEqual(acc.steps, [1, 2]);
  assert.deepEqual(acc.tasks, ['ck-1', 'ck-2']);
  assert.deepEqual(acc.matrix, [
    [0.9, null],
    [0.8, 0.7],
  ]);
  assert.ok(Math.abs(acc.average_accuracy! - 0.75) < 1e-12);
  assert.ok(Math.abs(acc.bwt! - -0.1) < 1e-12);
  assert.ok(Math.abs(acc.forgetting! - 0.1) < 1e-12);
  assert.deepEqual(store.integrityCheck(), []);

  // the retried checkpoint turns out bad: rejected, so nothing is being retried any more
  store.failMerge(store.currentMerge('clip')!.id, 'non-finite values', null);
  assert.equal(store.status(['clip'])[0]!.retrying, null);
  store.close();
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openStore, StoreError } from '../../src/store/index.js';
import { arrival, freshStore, mergeHead, sha } from './helpers.js';

test('queue order is arrival order, per pipeline', () => {
  const { store } = freshStore();
  for (const i of [5, 3, 9]) assert.equal(store.enqueue('clip', arrival(i)).outcome, 'queued');
  store.enqueue('vit', arrival(1, '/drop-vit'));
  assert.deepEqual(
    store.queued('clip').map((c) => c.name),
    ['ck-5.safetensors', 'ck-3.safetensors', 'ck-9.safetensors'],
  );
  assert.equal(store.nextQueued('clip')!.name, 'ck-5.safetensors');
  assert.equal(store.nextQueued('vit')!.name, 'ck-1.safetensors');
  assert.equal(store.nextQueued('nope'), null);
  const c = store.nextQueued('clip')!;
  assert.equal(c.status, 'queued');
  assert.equal(c.sha256, sha(5));
  assert.equal(c.size, 1005);
  assert.equal(c.pipeline, 'clip');
  store.close();
});

test('duplicates: same content elsewhere is a duplicate, same path and content is known', () => {
  const { store } = freshStore();
  const first = store.enqueue('clip', arrival(1));
  assert.equal(first.outcome, 'queued');
  const again = store.enqueue('clip', arrival(1));
  assert.equal(again.outcome, 'known');
  assert.equal(again.checkpoint.id, first.checkpoint.id);
  const copy = store.enqueue('clip', { ...arrival(1), name: 'copy', path: '/drop/copy.safetensors' });
  assert.equal(copy.outcome, 'duplicate');
  assert.equal(copy.checkpoint.id, first.checkpoint.id);
  // after merging it is still a duplicate
  mergeHead(store, 'clip');
  assert.equal(store.enqueue('clip', { ...arrival(1), path: '/drop/copy2' }).outcome, 'duplicate');
  // other pipelines may merge the same content
  assert.equal(store.enqueue('vit', arrival(1)).outcome, 'queued');
  // the caller records the duplicate as rejected; a rejected row does not block new content
  const r = store.reject(
    'clip',
    { name: 'copy', path: '/drop/copy.safetensors', sha256: sha(1), size: 1 },
    `duplicate of ${first.checkpoint.name}`,
    '/drop/.quarantine/copy',
  );
  assert.equal(r.status, 'rejected');
  assert.equal(store.queued('clip').length, 0);
  store.close();
});

test('the database itself refuses a second live row with the same content', () => {
  const { store } = freshStore();
  store.enqueue('clip', arrival(1));
  assert.throws(
    () =>
      store.db
        .prepare(
          `INSERT INTO checkpoints (pipeline_id, name, path, sha256, size, arrived_at, status) VALUES (1, 'x', '/x', ?, 1, 'now', 'queued')`,
        )
        .run(sha(1)),
    /UNIQUE/,
  );
  store.close();
});

test('rejections keep name, reason, path and quarantine path; rejectQueued takes a waiting one out', () => {
  const { store } = freshStore();
  store.reject(
    'clip',
    { name: 'junk.bin', path: '/drop/junk.bin' },
    'not safetensors: header length past the end',
    '/drop/.quarantine/junk.bin',
  );
  const q = store.enqueue('clip', arrival(2)).checkpoint;
  store.enqueue('clip', arrival(3));
  store.rejectQueued(q.id, 'file vanished before merging', null);
  assert.deepEqual(
    store.rejected('clip').map((c) => [c.name, c.reason, c.quarantine_path]),
    [
      ['junk.bin', 'not safetensors: header length past the end', '/drop/.quarantine/junk.bin'],
      ['ck-2.safetensors', 'file vanished before merging', null],
    ],
  );
  assert.equal(store.nextQueued('clip')!.name, 'ck-3.safetensors');
  assert.throws(() => store.rejectQueued(q.id, 'again', null), StoreError);
  assert.deepEqual(
    store.status()[0]!.rejected.map((r) => ({ name: r.name, reason: r.reason })),
    [
      { name: 'junk.bin', reason: 'not safetensors: header length past the end' },
      { name: 'ck-2.safetensors', reason: 'file vanished before merging' },
    ],
  );
  store.close();
});

test('markMerging takes only the head of the queue, one at a time per pipeline', () => {
  const { store } = freshStore();
  const a = store.enqueue('clip', arrival(1)).checkpoint;
  const b = store.enqueue('clip', arrival(2)).checkpoint;
  const v = store.enqueue('vit', arrival(3)).checkpoint;
  assert.throws(() => store.markMerging(b.id, { method: 'opcm', params: {} }), /not the head/);
  const { merge, checkpoint } = store.markMerging(a.id, { method: 'opcm', params: { alpha: 0.5 } });
  assert.equal(merge.step, 1);
  assert.equal(merge.status, 'running');
  assert.deepEqual(merge.params, { alpha: 0.5 });
  assert.equal(checkpoint.status, 'merging');
  assert.throws(() => store.markMerging(a.id, { method: 'opcm', params: {} }), /not queued/);
  assert.throws(() => store.markMerging(b.id, { method: 'opcm', params: {} }), /already merging/);
  // another pipeline is independent
  assert.equal(store.markMerging(v.id, { method: 'ties', params: {} }).merge.step, 1);
  assert.equal(store.currentMerge('clip')!.id, merge.id);
  assert.deepEqual(
    store.status().map((s) => s.current_merge?.checkpoint),
    ['ck-1.safetensors', 'ck-3.safetensors'],
  );
  store.close();
});

test('recoverInterrupted puts the merging checkpoint back at its place and redoes the same step', () => {
  const { store, dbPath } = freshStore();
  for (let i = 1; i <= 3; i++) store.enqueue('clip', arrival(i));
  mergeHead(store, 'clip');
  const head = store.nextQueued('clip')!;
  const { merge } = store.markMerging(head.id, { method: 'opcm', params: {} });
  assert.equal(merge.step, 2);
  store.close(); // as if killed: nothing else happens

  const after = openStore(dbPath);
  const back = after.recoverInterrupted();
  assert.deepEqual(
    back.map((c) => c.id),
    [head.id],
  );
  assert.equal(after.merge(merge.id)!.status, 'interrupted');
  assert.equal(after.nextQueued('clip')!.id, head.id, 'still the head');
  assert.equal(after.currentMerge('clip'), null);
  const redo = after.markMerging(head.id, { method: 'opcm', params: {} }).merge;
  assert.equal(redo.step, 2, 'the step did not move');
  // the old attempt cannot be committed any more
  assert.throws(
    () => after.commitMerge({ merge_id: merge.id, state: { generation: 2, path: 's/2' } }),
    /interrupted, not running/,
  );
  after.commitMerge({ merge_id: redo.id, state: { generation: 2, path: 's/2' } });
  assert.equal(after.recoverInterrupted().length, 0, 'nothing to recover after a clean commit');
  assert.deepEqual(
    after.history('clip').map((h) => [h.step, h.status]),
    [
      [1, 'committed'],
      [2, 'interrupted'],
      [2, 'committed'],
    ],
  );
  after.close();
});

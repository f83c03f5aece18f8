import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StoreError } from '../../src/store/index.js';
import { arrival, freshStore } from './helpers.js';

/** commitMergeAndVersion: the merge is committed with its version in one transaction, or neither is. */

const versionOf = (number: number) => ({
  pipeline: 'clip',
  number,
  parent: number > 1 ? number - 1 : null,
  path: `/repo/clip/${number}`,
  files: { 'model.safetensors': 'ab'.repeat(32) },
  manifest_sha256: 'cd'.repeat(32),
});

test('commitMergeAndVersion commits the merge and records its version together', () => {
  const { store } = freshStore();
  store.enqueue('clip', arrival(1));
  const { merge } = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {}, engine: 'portable' });
  const out = store.commitMergeAndVersion(
    {
      merge_id: merge.id,
      state: { generation: 1, path: 'states/clip/1' },
      engine_info: { name: 'portable' },
      tensor_metrics: [{ tensor: 'a.weight', kind: 'linear', tv_norm: 1 }],
    },
    versionOf(1),
  );
  assert.equal(out.merge.status, 'committed');
  assert.equal(out.version.merge_id, merge.id);
  assert.equal(out.version.number, 1);
  assert.deepEqual(out.version.engine, { name: 'portable' }, 'the version keeps its merge engine');
  assert.equal(store.latestVersion('clip')?.number, 1);
  assert.equal(store.currentStateGeneration('clip')?.generation, 1);
  assert.equal(store.tensorMetrics(merge.id).length, 1);
  store.close();
});

test('a version that cannot be recorded leaves the merge running: nothing is committed', () => {
  const { store } = freshStore();
  store.enqueue('clip', arrival(1));
  const { merge } = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: {} });
  assert.throws(
    () =>
      store.commitMergeAndVersion(
        { merge_id: merge.id, state: { generation: 1, path: 'states/clip/1' }, model_metrics: { x: 1 } },
        // its parent version 1 is not recorded
        { ...versionOf(2), parent: 1 },
      ),
    StoreError,
  );
  assert.equal(store.merge(merge.id)?.status, 'running');
  assert.equal(store.checkpoint(merge.checkpoint_id)?.status, 'merging');
  assert.equal(store.currentStateGeneration('clip'), null);
  assert.deepEqual(store.modelMetrics(merge.id), {}, 'no metrics from the rolled-back commit');
  assert.equal(store.latestVersion('clip'), null);
  // and the attempt can still be committed properly
  assert.equal(
    store.commitMergeAndVersion({ merge_id: merge.id, state: { generation: 1, path: 'states/clip/1' } }, versionOf(1))
      .version.number,
    1,
  );
  store.close();
});

import { join } from 'node:path';
import { openStore, type Store } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';

/** A fresh store in its own temp folder. */
export function freshStore(): { store: Store; dbPath: string; dir: string } {
  const dir = tempDir('cmerge-store-');
  const dbPath = join(dir, 'state', 'cmerge.sqlite');
  return { store: openStore(dbPath), dbPath, dir };
}

export const sha = (i: number): string => i.toString(16).padStart(64, '0');

export const arrival = (i: number, dir = '/drop') => ({
  name: `ck-${i}.safetensors`,
  path: `${dir}/ck-${i}.safetensors`,
  sha256: sha(i),
  size: 1000 + i,
});

/** Merge the head of the queue through to a committed merge (no files: the store does not look at them). */
export function mergeHead(store: Store, pipeline: string, extra: Partial<Parameters<Store['commitMerge']>[0]> = {}) {
  const head = store.nextQueued(pipeline);
  if (!head) throw new Error('queue empty');
  const { merge } = store.markMerging(head.id, { method: 'opcm', params: { alpha: 0.5 }, engine: 'portable' });
  return store.commitMerge({
    merge_id: merge.id,
    state: { generation: merge.step, path: `states/${pipeline}/${merge.step}` },
    ...extra,
  });
}

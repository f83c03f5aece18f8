import { openModel } from '../../src/io/model.js';
import type { ModelReader } from '../../src/io/types.js';

/** Opens every path as a model for the duration of `fn`, then closes them all. */
export function withModels<T>(paths: string[], fn: (models: ModelReader[]) => T): T {
  const models = paths.map((p) => openModel(p));
  try {
    return fn(models);
  } finally {
    for (const m of models) m.close();
  }
}

import type { PipelineConfig } from '../config/index.js';
import { swapCurrent } from '../publish/index.js';
import type { Store } from '../store/index.js';

/**
 * Point `current` at `version`, the one SQLite records as current (docs/operations.md): the
 * swap-pending record is set first (a commit that changed the version set it already), and
 * cleared once the symlink points there. A start that finds `current` elsewhere with no swap
 * pending knows it was moved by hand.
 */
export async function pointCurrent(store: Store, cfg: PipelineConfig, version: number): Promise<void> {
  if (store.swapPending(cfg.name) !== version) store.setSwapPending(cfg.name, version);
  await swapCurrent(cfg.repository, cfg.name, version);
  store.setSwapPending(cfg.name, null);
}

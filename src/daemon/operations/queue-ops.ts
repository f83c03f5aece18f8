import { existsSync, renameSync, rmSync } from 'node:fs';
import type { PipelineConfig } from '../../config/index.js';
import type { Store } from '../../store/index.js';
import type { DaemonEvents } from '../events.js';
import { moveToQuarantine, quarantineTarget } from '../intake/quarantine.js';
import { OperationError, type Done } from './types.js';

const strip = (n: string) => n.replace(/\.safetensors$/, '');
/** A checkpoint named `ref`, with or without `.safetensors` (revert, requeue, dequeue). */
export const namedLike = (ref: string) => (c: { name: string }) => c.name === ref || strip(c.name) === strip(ref);

/**
 * `cmerge requeue`: a rejected checkpoint's file goes back from quarantine to where it was dropped
 * and its rejection is cleared (kept for history), so the intake takes it as a new arrival. The
 * rejection is cleared before the file moves: a crash between leaves the file in quarantine with
 * its reason, never lost.
 */
export function requeue(cfg: PipelineConfig, store: Store, events: DaemonEvents | null, ref: string): Done {
  const pipeline = cfg.name;
  const c = store.rejected(pipeline).reverse().find(namedLike(ref));
  if (!c) throw new OperationError('not_found', `no rejected checkpoint "${ref}" in "${pipeline}"`);
  if (!c.quarantine_path || !existsSync(c.quarantine_path))
    throw new OperationError(
      'conflict',
      `${c.name}: its file is not in quarantine (${c.quarantine_path ?? 'never moved'})`,
    );
  if (existsSync(c.path)) throw new OperationError('conflict', `${c.path} exists: move it away first`);
  store.clearRejection(c.id);
  renameSync(c.quarantine_path, c.path);
  rmSync(`${c.quarantine_path}.reason.txt`, { force: true });
  events?.emit({ type: 'requeued', pipeline, checkpoint: c.name });
  const detail = `${c.name} moved back to ${c.path} (was rejected: ${c.reason ?? ''}); the intake takes it again`;
  return { result: { pipeline, operation: 'requeue', current_version: null, version: null, detail } };
}

/**
 * `cmerge dequeue`: a queued checkpoint taken out before it merges, recorded as rejected with the
 * reason "dequeued by the operator" and moved to quarantine; `cmerge requeue` brings it back.
 * Refused once it is merging (the store's transaction decides, not a check before it).
 */
export function dequeue(cfg: PipelineConfig, store: Store, events: DaemonEvents | null, ref: string): Done {
  const pipeline = cfg.name;
  const c = store.queued(pipeline).find(namedLike(ref));
  if (!c) {
    const merging = store.currentMerge(pipeline);
    const busy = merging && store.checkpoint(merging.checkpoint_id);
    if (busy && namedLike(ref)(busy))
      throw new OperationError('conflict', `${busy.name} is merging now: revert it afterwards`);
    throw new OperationError('not_found', `no queued checkpoint "${ref}" in "${pipeline}"`);
  }
  const reason = 'dequeued by the operator';
  const target = quarantineTarget(cfg.drop, c.path);
  store.rejectQueued(c.id, reason, target);
  moveToQuarantine(c.path, target, reason);
  events?.emit({ type: 'dequeued', pipeline, checkpoint: c.name });
  const detail = `${c.name} taken out of the queue, moved to ${target} ("cmerge requeue" brings it back)`;
  return { result: { pipeline, operation: 'dequeue', current_version: null, version: null, detail } };
}

import type { Logger } from 'winston';
import { StoreError, type Store } from '../../store/index.js';
import { pointCurrent } from '../current.js';
import type { DaemonEvents } from '../events.js';
import type { PipelineRunner } from '../pipeline.js';
import { dequeue, requeue } from './queue-ops.js';
import { revert } from './revert.js';
import { rollback } from './rollback.js';
import { OperationError, type Done, type OperationKind, type OperationResult, type Operations } from './types.js';

export { OperationError, HTTP_STATUS, type OperationResult, type Operations, type ReplayOptions } from './types.js';

/** Where the operations run: in the daemon (its runners, its API) or in the CLI under the state lock. */
export interface OperationsHost {
  store: Store;
  log: Logger;
  events: DaemonEvents | null;
  via: 'api' | 'cli';
  runner(pipeline: string): PipelineRunner | undefined;
}

/**
 * The operator's commands (docs/operations.md). Rollback and revert hold the pipeline's merging
 * off while they run (PipelineRunner.exclusive); every call, refused or not, is recorded in the
 * `operations` table. What an operation sets going after it (notifiers...) is tracked: settle()
 * waits for it (the CLI, before it exits).
 */
export class PipelineOperations implements Operations {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly host: OperationsHost) {}

  rollback(pipeline: string, version: number, opts: { anyEngine?: boolean } = {}): Promise<OperationResult> {
    return this.run(pipeline, 'rollback', { version, ...opts }, (r) =>
      r.exclusive(() => rollback(r, this.host.store, this.host.events, version, opts)),
    );
  }

  revert(pipeline: string, checkpoint: string, opts: { anyEngine?: boolean } = {}): Promise<OperationResult> {
    return this.run(pipeline, 'revert', { checkpoint, ...opts }, (r) =>
      r.exclusive(() => revert(r, this.host.store, this.host.events, checkpoint, opts)),
    );
  }

  pin(pipeline: string, version: number): Promise<OperationResult> {
    return this.pinning(pipeline, version, true);
  }

  unpin(pipeline: string, version: number): Promise<OperationResult> {
    return this.pinning(pipeline, version, false);
  }

  pause(pipeline: string, reason = 'paused by the operator'): Promise<OperationResult> {
    return this.run(pipeline, 'pause', { reason }, async () => {
      const { store, events } = this.host;
      store.setPaused(pipeline, reason);
      events?.emit({ type: 'paused', pipeline, reason });
      // a merge already running finishes; none starts after it
      return this.done(pipeline, 'pause', null, `merging paused (${reason}); intake keeps queueing`);
    });
  }

  resume(pipeline: string): Promise<OperationResult> {
    return this.run(pipeline, 'resume', {}, async (r) => {
      const { store, events } = this.host;
      const was = store.pauseState(pipeline);
      const recorded = store.currentVersion(pipeline)?.number;
      // paused for a hand-moved `current`: resuming continues from the merge state's version, which `current` serves again
      if (was?.kind === 'current_moved' && recorded) await pointCurrent(store, r.cfg, recorded);
      store.setPaused(pipeline, null);
      events?.emit({ type: 'resumed', pipeline });
      r.kick();
      return this.done(pipeline, 'resume', null, was ? 'merging resumed' : 'merging was not paused');
    });
  }

  requeue(pipeline: string, checkpoint: string): Promise<OperationResult> {
    return this.run(pipeline, 'requeue', { checkpoint }, async (r) =>
      requeue(r.cfg, this.host.store, this.host.events, checkpoint),
    );
  }

  dequeue(pipeline: string, checkpoint: string): Promise<OperationResult> {
    return this.run(pipeline, 'dequeue', { checkpoint }, async (r) =>
      dequeue(r.cfg, this.host.store, this.host.events, checkpoint),
    );
  }

  /** Waits for what the operations set going (notifiers, evaluator, retention). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private pinning(pipeline: string, version: number, pinned: boolean): Promise<OperationResult> {
    const kind = pinned ? 'pin' : 'unpin';
    return this.run(pipeline, kind, { version }, async () => {
      const { store, events } = this.host;
      const v = store.version(pipeline, version);
      if (!v) throw new OperationError('not_found', `no version ${version} of "${pipeline}"`);
      if (pinned && v.removed_at) throw new OperationError('conflict', `version ${version} was removed by retention`);
      if (pinned) store.pin(pipeline, version);
      else store.unpin(pipeline, version);
      events?.emit({ type: pinned ? 'pinned' : 'unpinned', pipeline, version });
      const detail = pinned ? `version ${version} pinned: retention keeps it` : `version ${version} unpinned`;
      return this.done(pipeline, kind, version, detail);
    });
  }

  private done(pipeline: string, operation: OperationKind, version: number | null, detail: string): Done {
    const current_version = this.host.store.currentVersion(pipeline)?.number ?? null;
    return { result: { pipeline, operation, current_version, version, detail } };
  }

  /** One operation: refused (OperationError, StoreError as a conflict) or done, recorded either way. */
  private async run(
    pipeline: string,
    kind: OperationKind,
    args: Record<string, unknown>,
    fn: (runner: PipelineRunner) => Promise<Done>,
  ): Promise<OperationResult> {
    const runner = this.host.runner(pipeline);
    if (!runner) throw new OperationError('not_found', `no pipeline "${pipeline}"`);
    const record = (outcome: 'ok' | 'refused' | 'failed', detail: string) => {
      try {
        this.host.store.recordOperation({ pipeline, kind, args, via: this.host.via, outcome, detail });
      } catch (e) {
        this.host.log.warn(`operation ${kind} not recorded: ${(e as Error).message}`, { pipeline });
      }
    };
    try {
      if (kind === 'rollback' || kind === 'revert') this.host.log.info(`${kind} started`, { pipeline, ...args });
      const { result, after } = await fn(runner);
      record('ok', result.detail);
      this.host.log.info(`${kind}: ${result.detail}`, { pipeline, via: this.host.via });
      if (after) this.track(after);
      return result;
    } catch (e) {
      const error = e instanceof StoreError ? new OperationError('conflict', e.message) : (e as Error);
      record(error instanceof OperationError ? 'refused' : 'failed', error.message);
      this.host.log.warn(`${kind} ${error instanceof OperationError ? 'refused' : 'failed'}: ${error.message}`, {
        pipeline,
      });
      throw error;
    }
  }

  private track(p: Promise<void>): void {
    const tracked: Promise<void> = p
      .catch((e: Error) => void this.host.log.warn(`after an operation: ${e.message}`))
      .finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }
}

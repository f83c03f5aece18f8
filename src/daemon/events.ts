import { EventEmitter } from 'node:events';

/**
 * What the daemon announces to API clients (`GET /v1/events`, server-sent events). One event per
 * fact; `data` is what the event's JSON carries besides `pipeline`.
 */
export type DaemonEvent =
  | { type: 'merge_started'; pipeline: string; checkpoint: string; step: number }
  | {
      type: 'merge_progress';
      pipeline: string;
      checkpoint: string;
      step: number;
      phase: string;
      done: number;
      total: number;
    }
  | { type: 'merge_finished'; pipeline: string; checkpoint: string; step: number; version: number; seconds: number }
  | { type: 'version_published'; pipeline: string; version: number; parent: number | null; path: string }
  | { type: 'rejected'; pipeline: string; checkpoint: string; reason: string }
  | { type: 'gate_failed'; pipeline: string; checkpoint: string; reason: string }
  | { type: 'rollback'; pipeline: string; version: number; rolled_back: string[] }
  | { type: 'revert'; pipeline: string; version: number; checkpoint: string }
  | { type: 'paused'; pipeline: string; reason: string }
  | { type: 'resumed'; pipeline: string }
  | { type: 'requeued' | 'dequeued'; pipeline: string; checkpoint: string }
  | { type: 'pinned' | 'unpinned'; pipeline: string; version: number };

export type DaemonEventType = DaemonEvent['type'];

/** A typed in-process bus: the runners emit, the API's event stream listens. */
export class DaemonEvents {
  private readonly emitter = new EventEmitter();
  private seq = 0;

  constructor() {
    // every SSE client is a listener
    this.emitter.setMaxListeners(0);
  }

  emit(event: DaemonEvent): void {
    this.seq += 1;
    this.emitter.emit('event', { id: this.seq, at: new Date().toISOString(), event });
  }

  /** Returns the unsubscribe. */
  on(listener: (e: { id: number; at: string; event: DaemonEvent }) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}

import type { Logger } from 'winston';
import type { PipelineConfig } from '../../config/index.js';
import type { ModelReader } from '../../io/types.js';
import type { Store } from '../../store/index.js';
import { DEFAULT_BACKOFF, type BackoffOptions, type Clock } from '../backoff.js';

/**
 * The intake's waits, all in ms. The stability window itself is the pipeline's `settle_ms`
 * (config): how long a candidate must stay unchanged before it is taken.
 */
export interface IntakeTimings {
  /** how often candidates are looked at again (size, mtime, completeness) and due retries resumed (default 200 ms) */
  tickMs: number;
  /** how often the whole drop folder is listed again, for file events that were lost (default 5 s) */
  rescanMs: number;
  /** how long a checkpoint may stay incomplete (truncated, missing shard) before it is rejected (default 10 min) */
  incompleteTimeoutMs: number;
  /** wait before retrying an intake that failed for reasons not the checkpoint's own, SQLite or the disk (default 5 s doubling, at most 10 min) */
  retry: BackoffOptions;
}

export const DEFAULT_INTAKE_TIMINGS: Readonly<IntakeTimings> = {
  tickMs: 200,
  rescanMs: 5_000,
  incompleteTimeoutMs: 600_000,
  retry: DEFAULT_BACKOFF,
};

/** What an Intake needs; every timing is optional (DEFAULT_INTAKE_TIMINGS). */
export interface IntakeOptions extends Partial<IntakeTimings> {
  /** the pipeline whose drop folder is watched; its `settle_ms` is the stability window */
  pipeline: PipelineConfig;
  /** where arrivals are queued and rejections recorded (and duplicates found) */
  store: Store;
  /** the pipeline's base model: every checkpoint is validated against it */
  base: ModelReader;
  log: Logger;
  /** what timestamps and the tick timer run on (default: the system clock); a test moves its own */
  clock?: Clock;
  /** a checkpoint was queued */
  onQueued(): void;
  /** a checkpoint was rejected and moved to quarantine */
  onRejected?(): void;
}

/** The timings of `options`, defaults filled in (an undefined field counts as not given). */
export function intakeTimings(options: Partial<IntakeTimings>): IntakeTimings {
  const d = DEFAULT_INTAKE_TIMINGS;
  return {
    tickMs: options.tickMs ?? d.tickMs,
    rescanMs: options.rescanMs ?? d.rescanMs,
    incompleteTimeoutMs: options.incompleteTimeoutMs ?? d.incompleteTimeoutMs,
    retry: options.retry ?? d.retry,
  };
}

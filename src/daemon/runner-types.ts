import type { Logger } from 'winston';
import type { PipelineConfig } from '../config/index.js';
import type { EngineAnnounce } from '../engine/index.js';
import type { TensorRules } from '../merge/kinds.js';
import type { MergeProgress } from '../merge/runner.js';
import type { FinishCheckpoint, SseHubs } from '../publish/index.js';
import type { Checkpoint, Store } from '../store/index.js';
import { DEFAULT_BACKOFF, type BackoffOptions, type Clock } from './backoff.js';
import type { DaemonEvents } from './events.js';
import type { Limiter } from './limiter.js';
import type { DaemonMetrics } from './metrics-server.js';
import { type mergeMetrics } from './metrics.js';
import { DEFAULT_PROGRESS_MESSAGE_MS, type RunningMerge, type WorkerResult } from './worker-client.js';

/** What a pipeline runner (src/daemon/pipeline.ts) is given, its timings, its phases, and the shapes its steps pass on. */

export interface PipelineDeps {
  store: Store;
  limiter: Limiter;
  log: Logger;
  stateRoot: string;
  sse: SseHubs;
  threads: number;
  baseSha256: string;
  metrics: DaemonMetrics | null;
  /** the engine's device is lost for the process (EngineFatalError): the daemon must exit */
  onFatal: (e: Error) => void;
  /** the line naming each merge's engine (default: logged, on every merge) */
  announceEngine?: EngineAnnounce;
  /** what waits and timestamps read (default: the system clock) */
  clock?: Clock;
  /** default: DEFAULT_RUNNER_TIMINGS */
  timings?: Partial<RunnerTimings>;
  /** called with every phase the runner enters (diagnostics and tests) */
  onPhase?: (phase: RunnerPhase) => void;
  /** what the runner announces to API clients */
  events?: DaemonEvents;
}

/** The runner's waits, all in ms. */
export interface RunnerTimings {
  /** wait before retrying after a failed merge or a failed recovery (default 5 s doubling, at most 10 min) */
  backoff: BackoffOptions;
  /** least time between two progress records in SQLite, what `cmerge status` shows (default 1 s); a pass's end is always recorded */
  progressRecordMs: number;
  /** least time between two progress messages from the merge worker (default 200 ms) */
  progressMessageMs: number;
  /** once the shutdown budget is spent and the merge is asked to abort: how long it may ignore that before its worker is terminated (default 10 s) */
  terminateAfterAbortMs: number;
}

export const DEFAULT_RUNNER_TIMINGS: Readonly<RunnerTimings> = {
  backoff: DEFAULT_BACKOFF,
  progressRecordMs: 1_000,
  progressMessageMs: DEFAULT_PROGRESS_MESSAGE_MS,
  terminateAfterAbortMs: 10_000,
};

/** The config's tensor patterns as the merge runner's rules (one classifier: src/merge/kinds.ts). */
export function tensorRulesOf(tensors: PipelineConfig['tensors']): TensorRules {
  return {
    include: tensors.include,
    exclude: tensors.exclude,
    linearInclude: tensors.linear_include,
    linearExclude: tensors.linear_exclude,
  };
}

/** A merged checkpoint as the version's manifest and model card list it (an adapter's record included). */
export function lineageOf(c: Checkpoint, mergedAt: string): FinishCheckpoint {
  // the path is for the model card's Hub id (its config.json); the manifest does not record it
  const entry: FinishCheckpoint = { name: c.name, sha256: c.sha256 ?? '', merged_at: mergedAt, path: c.path };
  if (c.dtype) entry.dtype = c.dtype;
  if (c.adapter) entry.adapter = c.adapter;
  return entry;
}

/** The merge in flight as `cmerge daemon`'s STATUS line and /metrics show it. */
export interface CurrentMerge {
  checkpoint: string;
  step: number;
  started_at: string;
  progress: MergeProgress | null;
}

/** A merge in flight: what status shows, and its worker once started. */
export interface ActiveMerge {
  readonly status: CurrentMerge;
  worker: RunningMerge | null;
}

/**
 * Where a runner is. `failures` counts the attempts that failed in a row (the backoff grows with
 * it; a published merge resets it). Stopping is final: a runner is not started again.
 */
export type RunnerPhase =
  /** nothing running: the queue was empty when last looked at */
  | { kind: 'idle' }
  /** one checkpoint being merged and published */
  | { kind: 'merging'; active: ActiveMerge; failures: number }
  /** an attempt failed (`reason`): it is recorded as interrupted and the files are reconciled with SQLite */
  | { kind: 'recovering'; failures: number; reason: string }
  /** waiting until `until` before the next attempt; not `recovered`: the recovery is tried again first */
  | { kind: 'backoff'; until: number; failures: number; reason: string; recovered: boolean }
  /** stop() was called or the engine's device is lost: no new work; `active`, a merge still finishing */
  | { kind: 'stopping'; active: ActiveMerge | null };

/** What the worker made, the figures recorded for it, and how long the merge took until then (s). */
export interface MergeOutcome extends WorkerResult {
  metrics: ReturnType<typeof mergeMetrics>;
  mergeSeconds: number;
}

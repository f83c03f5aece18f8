import { Worker } from 'node:worker_threads';
import { EngineFatalError, type EngineAnnounce } from '../engine/index.js';
import { InputError } from '../io/types.js';
import type { MergeProgress, MergeReport } from '../merge/runner.js';
import type { WorkerMessage, WorkerRequest } from './merge-worker.js';
import { log } from '../util/log.js';

/** Least time between two progress messages from a merge worker (default): a few a second are plenty for STATUS lines and logs. */
export const DEFAULT_PROGRESS_MESSAGE_MS = 200;

/** What a merge in the worker resolves with. */
export interface WorkerResult {
  report: MergeReport;
  /** the worker's peak resident set (the whole process's, as Node reports it), bytes */
  peakRssBytes: number;
}

export interface RunningMerge {
  result: Promise<WorkerResult>;
  /**
   * Ask the merge to stop at its next tensor: `result` then rejects and the worker exits on its own
   * (the partial state generation and output are discarded by the runner).
   */
  abort(): void;
  /**
   * Kill the worker now. Last resort: a native job still running in it makes the process abort
   * when it completes; the state generation it was writing is discarded at the next start.
   */
  terminate(): Promise<void>;
}

/** The error a worker's `error` message stands for: InputError and EngineFatalError are rebuilt as such. */
function errorOf(message: Extract<WorkerMessage, { type: 'error' }>): Error {
  if (message.input) return new InputError(message.file!, message.reason!);
  const error = message.fatal ? new EngineFatalError(message.message) : new Error(message.message);
  return Object.assign(error, { stack: message.stack });
}

/**
 * Runs one merge in a worker thread; its progress reports go to `onProgress` (the merge runner's
 * type, as is), the line naming its engine to `onEngine`.
 */
export function startMergeWorker(
  req: WorkerRequest,
  onProgress: (p: MergeProgress) => void,
  onEngine: EngineAnnounce,
): RunningMerge {
  const abortFlag = new SharedArrayBuffer(4);
  const worker = new Worker(new URL('./merge-worker.js', import.meta.url), {
    workerData: { ...req, abortFlag, logLevel: log.level },
  });
  // The result settles when the worker thread has exited, not at its last message: the daemon may
  // exit right after a merge ends, and a worker torn down under a running native job (another
  // tensor's, at concurrency > 1) aborts the whole process when that job completes.
  let outcome: { ok: WorkerResult } | { error: Error } | null = null;
  const result = new Promise<WorkerResult>((resolve, reject) => {
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'progress') return onProgress(message.progress);
      if (message.type === 'engine') return onEngine(message.line, message.level);
      outcome ??=
        message.type === 'done'
          ? { ok: { report: message.report, peakRssBytes: message.peakRssBytes } }
          : { error: errorOf(message) };
    });
    worker.on('error', (e) => void (outcome ??= { error: e }));
    worker.on('exit', (code) => {
      if (!outcome) reject(new Error(`merge worker exited with code ${code} before finishing`));
      else if ('ok' in outcome) resolve(outcome.ok);
      else reject(outcome.error);
    });
  });
  return {
    result,
    abort: () => void Atomics.store(new Int32Array(abortFlag), 0, 1),
    terminate: async () => void (await worker.terminate()),
  };
}

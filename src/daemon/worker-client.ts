import { Worker } from 'node:worker_threads';
import { EngineFatalError } from '../engine/index.js';
import { InputError } from '../io/types.js';
import type { MergeReport } from '../merge/runner.js';
import type { WorkerMessage, WorkerRequest } from './merge-worker.js';

export interface MergeProgressInfo {
  t: number;
  phase: string;
  index: number;
  total: number;
  tensor: string;
}

export interface RunningMerge {
  result: Promise<{ report: MergeReport; peakRssBytes: number }>;
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

/** Runs one merge in a worker thread; InputError and EngineFatalError from the worker are rebuilt as such. */
export function startMergeWorker(req: WorkerRequest, onProgress: (p: MergeProgressInfo) => void): RunningMerge {
  const abortFlag = new SharedArrayBuffer(4);
  const worker = new Worker(new URL('./merge-worker.js', import.meta.url), { workerData: { ...req, abortFlag } });
  let settled = false;
  const result = new Promise<{ report: MergeReport; peakRssBytes: number }>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') onProgress(m);
      else if (m.type === 'done') {
        settled = true;
        resolve({ report: m.report, peakRssBytes: m.peakRssBytes });
      } else {
        settled = true;
        if (m.input) reject(new InputError(m.file!, m.reason!));
        else
          reject(Object.assign(m.fatal ? new EngineFatalError(m.message) : new Error(m.message), { stack: m.stack }));
      }
    });
    worker.on('error', (e) => {
      settled = true;
      reject(e);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new Error(`merge worker exited with code ${code} before finishing`));
    });
  });
  return {
    result,
    abort: () => void Atomics.store(new Int32Array(abortFlag), 0, 1),
    terminate: async () => void (await worker.terminate()),
  };
}

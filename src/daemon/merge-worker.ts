import { parentPort, workerData } from 'node:worker_threads';
import type { EngineConfig } from '../config/index.js';
import { createEngine, EngineFatalError, type Engine } from '../engine/index.js';
import { InputError } from '../io/types.js';
import { runMerge, type MergeProgress, type MergeRequest } from '../merge/runner.js';
import { log } from '../util/log.js';
import { engineOptions } from './engine-check.js';
import { DEFAULT_PROGRESS_MESSAGE_MS } from './worker-client.js';

/**
 * Worker-thread entry: one merge per worker, so the main event loop stays responsive and the
 * memory of a merge is returned when the worker exits. Posts progress and one result message.
 */
export type WorkerRequest = Omit<MergeRequest, 'engine' | 'onProgress'> & {
  engine: EngineConfig;
  threads?: number;
  /** Int32 flag set by the daemon to stop the merge at the next tensor (a clean, cooperative stop) */
  abortFlag?: SharedArrayBuffer;
  /** least time between two progress messages, ms (default DEFAULT_PROGRESS_MESSAGE_MS); a pass's last tensor is always reported */
  progressMessageMs?: number;
  /** the daemon's log level: a worker thread has its own logger, at the default level otherwise */
  logLevel?: string;
};

export type WorkerMessage =
  | { type: 'progress'; progress: MergeProgress }
  // the line naming the engine: the daemon logs it when it changes, not on every merge
  | { type: 'engine'; line: string; level: 'info' | 'warn' }
  | { type: 'done'; report: Awaited<ReturnType<typeof runMerge>>; peakRssBytes: number }
  // fatal: the engine's device is lost for the whole process (EngineFatalError): the daemon must exit
  | { type: 'error'; input: boolean; fatal?: boolean; file?: string; reason?: string; message: string; stack?: string };

const { abortFlag, progressMessageMs = DEFAULT_PROGRESS_MESSAGE_MS, logLevel, ...req } = workerData as WorkerRequest;
if (logLevel) log.level = logLevel;
const aborted = abortFlag ? new Int32Array(abortFlag) : null;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
let engine: Engine | null = null;
let lastPost = 0;
try {
  engine = createEngine(req.engine.name, {
    ...engineOptions(req.engine, req.threads),
    // the same flag: a DOP tensor's loop ends at its next step rather than running on for minutes
    stop: aborted ?? undefined,
    announce: (line, level) => post({ type: 'engine', line, level }),
  });
  const report = await runMerge({
    ...req,
    engine,
    onProgress: (progress) => {
      // Throwing here unwinds runMerge like any failure (pending generation and output discarded).
      // Worker.terminate() instead would tear the worker down under a running native job, whose
      // completion then aborts the whole process.
      if (aborted && Atomics.load(aborted, 0) !== 0) throw new Error('merge aborted: the daemon is stopping');
      const now = Date.now();
      if (now - lastPost > progressMessageMs || progress.index + 1 === progress.total) {
        lastPost = now;
        post({ type: 'progress', progress });
      }
    },
  });
  post({ type: 'done', report, peakRssBytes: process.resourceUsage().maxRSS * 1024 });
} catch (e) {
  const err = e as Error;
  if (e instanceof InputError) post({ type: 'error', input: true, file: e.file, reason: e.reason, message: e.message });
  else
    post({ type: 'error', input: false, fatal: e instanceof EngineFatalError, message: err.message, stack: err.stack });
} finally {
  engine?.close();
}

import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Logger } from 'winston';
import type { PipelineConfig } from '../config/index.js';
import { EngineFatalError } from '../engine/index.js';
import { InputError } from '../io/types.js';
import { commitGeneration, currentStep, discardAfter, generationDir, pruneGenerations } from '../merge/state.js';
import type { TensorRules } from '../merge/kinds.js';
import type { MergeReport } from '../merge/runner.js';
import {
  applyRetention,
  beginVersion,
  discardVersionsAbove,
  finishVersion,
  readCurrent,
  recoverRepository,
  runNotifiers,
  sha256File,
  swapCurrent,
  type SseHubs,
} from '../publish/index.js';
import { SHUTDOWN_REASON, type Checkpoint, type Store } from '../store/index.js';
import { cmergeVersion } from '../util/version.js';
import { retryDelayMs } from './backoff.js';
import { runEvaluator } from './evaluator.js';
import type { Limiter } from './limiter.js';
import type { DaemonMetrics } from './metrics-server.js';
import { mergeMetrics } from './metrics.js';
import { moveToQuarantine, quarantineTarget } from './quarantine.js';
import { startMergeWorker, type MergeProgressInfo, type RunningMerge } from './worker-client.js';

/**
 * One pipeline's merges, one at a time, in queue order. Per checkpoint (design.md §4–5):
 * mark merging → merge in a worker into a new state generation and a staging version folder →
 * finish the version (manifest last, rename) → ONE SQLite transaction commits the merge, its
 * metrics, the state generation and the version → swap `current` → move the state's CURRENT →
 * notify, evaluate, retention. A crash anywhere is repaired by recover(): work not committed in
 * SQLite is discarded (state generations, staging and numbered folders above the recorded
 * version) and redone from the last committed state; committed work is rolled forward.
 */
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
}

/** The config's tensor patterns as the merge runner's rules (one classifier: src/merge/kinds.ts). */
export function tensorRulesOf(t: PipelineConfig['tensors']): TensorRules {
  return { include: t.include, exclude: t.exclude, linearInclude: t.linear_include, linearExclude: t.linear_exclude };
}

export interface CurrentMerge {
  checkpoint: string;
  step: number;
  started_at: string;
  progress: MergeProgressInfo | null;
}

export class PipelineRunner {
  private running: RunningMerge | null = null;
  private current: CurrentMerge | null = null;
  private loop: Promise<void> | null = null;
  private wake = false;
  private stopping = false;
  private retryAt = 0;
  private failures = 0;
  /** A merge or its publication failed part-way: files must be reconciled with SQLite before the next one. */
  private needsRecovery = false;
  private failure = '';
  private readonly abort = new AbortController();

  constructor(
    public cfg: PipelineConfig,
    private readonly d: PipelineDeps,
  ) {}

  get stateDir(): string {
    return join(this.d.stateRoot, 'pipelines', this.cfg.name, 'state');
  }

  get status(): CurrentMerge | null {
    return this.current;
  }

  /** Reconcile files with SQLite after any stop, clean or not. */
  async recover(): Promise<void> {
    const { store, log } = this.d;
    const name = this.cfg.name;
    const committed = store.currentStateGeneration(name)?.generation ?? 0;
    // state generations written by merges that never committed
    discardAfter(this.stateDir, committed);
    if (committed > 0) {
      if (!existsSync(generationDir(this.stateDir, committed)))
        throw new Error(`${this.stateDir}: committed state generation ${committed} is missing`);
      if (currentStep(this.stateDir) !== committed) commitGeneration(this.stateDir, committed);
      await pruneGenerations(this.stateDir, [committed]);
    }
    const rec = await recoverRepository(this.cfg.repository, name, { quick: true });
    if (rec.removed.length) log.info(`removed leftovers: ${rec.removed.join(', ')}`, { pipeline: name });
    const latest = store.latestVersion(name)?.number ?? 0;
    // numbered folders above the recorded version were published by a merge that did not commit
    for (const v of await discardVersionsAbove(this.cfg.repository, name, latest))
      log.warn(`removed version ${v}: its merge was not committed (it will be redone)`, { pipeline: name });
    const current = await readCurrent(this.cfg.repository, name);
    if (latest > 0 && current !== latest) await swapCurrent(this.cfg.repository, name, latest);
    // nothing committed yet: a `current` is one recoverRepository pointed at a version removed above
    else if (latest === 0 && current !== null) await rm(join(this.cfg.repository, name, 'current'), { force: true });
    if (latest > 0 && this.cfg.notifiers.length > 0 && store.notifications(name, latest).length === 0) {
      // the daemon stopped between publication and notification: tell the servers now
      void this.notify(latest, join(this.cfg.repository, name, String(latest)));
    }
  }

  /** Something was queued: run the queue unless already running. */
  kick(): void {
    this.wake = true;
    if (!this.loop && !this.stopping) {
      this.loop = this.drain().finally(() => {
        this.loop = null;
        if (this.wake && !this.stopping) this.kick();
      });
    }
  }

  private async drain(): Promise<void> {
    this.wake = false;
    while (!this.stopping) {
      if (Date.now() < this.retryAt) {
        setTimeout(() => this.kick(), this.retryAt - Date.now()).unref();
        return;
      }
      if (this.needsRecovery) {
        const err = await this.recoverAfterFailure();
        if (err) {
          this.retryLater('recording the failed merge failed', err);
          continue;
        }
      }
      const next = this.d.store.nextQueued(this.cfg.name);
      if (!next) return;
      const release = await this.d.limiter.acquire();
      try {
        if (this.stopping) return;
        await this.mergeOne(next);
        this.failures = 0;
      } catch (e) {
        this.mergeFailed(e as Error);
        // at once: a full disk should not keep holding our partial files until the retry
        const err = await this.recoverAfterFailure();
        if (err)
          this.d.log.error(`recording the failed merge failed (tried again before the next merge): ${err.message}`, {
            pipeline: this.cfg.name,
          });
        // after the attempt is recorded as interrupted: the checkpoint is queued for the next start
        if (e instanceof EngineFatalError) {
          this.d.onFatal(e);
          return;
        }
      } finally {
        release();
      }
    }
  }

  /**
   * Anything that fails in a merge and is not the checkpoint's fault (disk full, I/O errors, the
   * engine) leaves the checkpoint at the head of the queue: the attempt is recorded as interrupted,
   * the files are reconciled with SQLite as after a crash, and the merge is retried with backoff.
   */
  private mergeFailed(e: Error): void {
    const what = this.current ? `merge ${this.current.step} (${this.current.checkpoint})` : 'the next merge';
    this.current = null;
    this.running = null;
    this.needsRecovery = true;
    this.failure = this.stopping ? SHUTDOWN_REASON : e.message;
    if (this.stopping) {
      this.d.log.warn(`${what} abandoned for shutdown: the checkpoint stays queued`, { pipeline: this.cfg.name });
      return;
    }
    this.d.metrics?.countFailure(this.cfg.name);
    if (e instanceof EngineFatalError) {
      // every later merge in this process would fail too: no retry here, the daemon exits
      this.stopping = true;
      this.d.log.error(
        `${what} failed, the engine's device is lost: the checkpoint stays queued for the restart: ${e.message}`,
        { pipeline: this.cfg.name },
      );
      return;
    }
    this.retryLater(`${what} failed`, e);
  }

  private retryLater(what: string, e: Error): void {
    this.failures++;
    const delay = retryDelayMs(this.failures);
    this.retryAt = Date.now() + delay;
    this.d.log.error(`${what}, retrying in ${delay / 1000} s: ${e.message}`, { pipeline: this.cfg.name });
  }

  /**
   * After a failed merge: the attempt recorded as interrupted (its checkpoint back at the head of
   * the queue) and the files reconciled with SQLite. The error when that fails too (SQLite's own
   * disk full...), else null; needsRecovery stays set and it is tried again before the next merge.
   */
  private async recoverAfterFailure(): Promise<Error | null> {
    try {
      const open = this.d.store.currentMerge(this.cfg.name);
      if (open) this.d.store.abandonMerge(open.id, this.failure);
      await this.recover();
      this.needsRecovery = false;
      return null;
    } catch (e) {
      return e as Error;
    }
  }

  private async mergeOne(c: Checkpoint): Promise<void> {
    const { store, log } = this.d;
    const cfg = this.cfg;
    const { merge } = store.markMerging(c.id, { method: cfg.method, params: cfg.params, engine: cfg.engine.name });
    const t = merge.step;
    const started = Date.now();
    this.current = { checkpoint: c.name, step: t, started_at: new Date(started).toISOString(), progress: null };
    log.info(`merge ${t} started: ${c.name}`, { pipeline: cfg.name, step: t, method: cfg.method });
    const staging = await beginVersion(cfg.repository, cfg.name, t);
    let report: MergeReport;
    let peakRssBytes: number;
    let progressWritten = 0;
    try {
      this.running = startMergeWorker(
        {
          base: cfg.base,
          stateDir: this.stateDir,
          method: cfg.method,
          params: cfg.params,
          checkpoints: [c.path],
          out: staging.dir,
          fromStep: t - 1,
          commit: false,
          rules: tensorRulesOf(cfg.tensors),
          maxShardBytes: cfg.max_shard_bytes,
          maxTaskNormRatio: cfg.max_task_vector_norm_ratio,
          sha256: { [c.path]: c.sha256 ?? '' },
          sketch: true,
          engine: cfg.engine,
          threads: this.d.threads,
        },
        (p) => {
          if (this.current) this.current.progress = p;
          // for `cmerge status`: at most about once a second, and at the end of each pass
          const now = Date.now();
          if (now - progressWritten >= 1000 || p.index + 1 === p.total) {
            progressWritten = now;
            try {
              store.setMergeProgress(merge.id, {
                phase: p.phase,
                done: p.index + 1,
                total: p.total,
                at: new Date(now).toISOString(),
              });
            } catch (e) {
              log.warn(`merge ${t}: progress not recorded: ${(e as Error).message}`, { pipeline: cfg.name });
            }
          }
          if (p.index + 1 === p.total)
            log.info(`merge ${t}: ${p.phase} pass done (${p.total} tensors)`, {
              pipeline: cfg.name,
              step: t,
              seconds: (Date.now() - started) / 1000,
            });
        },
      );
      ({ report, peakRssBytes } = await this.running.result);
    } catch (e) {
      // asynchronously: a partial output can be hundreds of MB
      await rm(staging.dir, { recursive: true, force: true });
      if (!(e instanceof InputError)) throw e;
      this.current = null;
      this.running = null;
      const target = quarantineTarget(cfg.drop, c.path);
      store.failMerge(merge.id, e.reason, target);
      moveToQuarantine(c.path, target, e.reason);
      log.warn(`rejected ${c.name} during merge ${t}: ${e.reason}`, { pipeline: cfg.name, quarantine: target });
      this.d.metrics?.countRejection(cfg.name);
      return;
    }
    this.running = null;
    this.d.metrics?.setEngine(cfg.name, report.engine_info);
    const mergeSeconds = (Date.now() - started) / 1000;
    const step = report.steps[0];
    const metrics = mergeMetrics(report, step);
    const merged = store
      .mergedCheckpoints(cfg.name)
      .map((x) => ({ name: x.name, sha256: x.sha256 ?? '', merged_at: x.merged_at ?? '' }));
    const published = await finishVersion(staging, {
      parent: t > 1 ? t - 1 : null,
      method: cfg.method,
      params: cfg.params,
      base: { path: cfg.base, sha256: this.d.baseSha256 },
      checkpoints: [...merged, { name: c.name, sha256: c.sha256 ?? '', merged_at: new Date().toISOString() }],
      engine: report.engine,
      metrics: metrics.model,
      cmergeVersion: cmergeVersion(),
      knownSha256: Object.fromEntries(Object.entries(report.out_sha256).map(([p, h]) => [relative(staging.dir, p), h])),
    });
    const genDir = generationDir(this.stateDir, t);
    const stateSha = step.state_sha256;
    const manifestSha = await sha256File(join(published.dir, 'manifest.json'));
    store.db
      .transaction(() => {
        store.commitMerge({
          merge_id: merge.id,
          state: { generation: t, path: genDir, sha256: stateSha },
          engine: report.engine,
          engine_info: report.engine_info,
          gpu: report.gpu,
          timings: {
            merge_s: mergeSeconds,
            update_s: step.seconds.update,
            analysis_s: step.seconds.analysis,
            output_s: report.seconds.output,
            total_s: (Date.now() - started) / 1000,
          },
          peak_rss: peakRssBytes,
          scalars: metrics.scalars,
          tensor_metrics: metrics.tensors,
          model_metrics: metrics.model,
          retention: report.retention,
        });
        store.recordVersion({
          pipeline: cfg.name,
          number: t,
          parent: t > 1 ? t - 1 : null,
          merge_id: merge.id,
          path: published.dir,
          files: published.manifest.files,
          manifest_sha256: manifestSha,
        });
      })
      .immediate();
    await swapCurrent(cfg.repository, cfg.name, t);
    commitGeneration(this.stateDir, t);
    await pruneGenerations(this.stateDir, [t]);
    this.current = null;
    this.d.metrics?.observeMerge(cfg.name, (Date.now() - started) / 1000);
    const gpu = report.gpu
      ? {
          gpu_s: report.gpu.gpu_seconds,
          peak_device_mib: Math.round(report.gpu.peak_device_bytes / 2 ** 20),
          cpu_fallbacks: report.gpu.cpu_fallbacks,
        }
      : {};
    log.info(`published version ${t}: ${c.name}`, {
      pipeline: cfg.name,
      step: t,
      engine: report.engine,
      merge_s: mergeSeconds,
      total_s: (Date.now() - started) / 1000,
      peak_rss_mib: Math.round(peakRssBytes / 2 ** 20),
      ...gpu,
      ...metrics.scalars,
    });
    await this.notify(t, published.dir);
    await this.evaluate(t, published.dir);
    await this.retain();
  }

  private async notify(version: number, dir: string): Promise<void> {
    if (this.cfg.notifiers.length === 0) return;
    const { store, log } = this.d;
    const modelFile = existsSync(join(dir, 'model.safetensors'))
      ? join(dir, 'model.safetensors')
      : join(dir, 'model.safetensors.index.json');
    await runNotifiers(
      this.cfg.notifiers,
      { pipeline: this.cfg.name, version, path: dir, modelFile },
      {
        sse: this.d.sse,
        signal: this.abort.signal,
        onOutcome: (o) => {
          store.recordNotification(this.cfg.name, version, {
            notifier: o.notifier,
            attempt: o.attempt,
            ok: o.ok,
            detail: o.detail,
            duration_ms: o.durationMs,
          });
          log.log(
            o.ok ? 'info' : 'warn',
            `notifier ${o.notifier} attempt ${o.attempt}: ${o.ok ? 'ok' : 'failed'} ${o.detail}`,
            { pipeline: this.cfg.name, version },
          );
        },
      },
    );
  }

  private async evaluate(version: number, dir: string): Promise<void> {
    if (!this.cfg.evaluator) return;
    try {
      const scores = await runEvaluator(this.cfg.evaluator, dir);
      this.d.store.recordEvaluation(this.cfg.name, version, scores);
      this.d.log.info(`evaluated version ${version}`, { pipeline: this.cfg.name, scores });
    } catch (e) {
      this.d.log.warn(`evaluation of version ${version} failed: ${(e as Error).message}`, { pipeline: this.cfg.name });
    }
  }

  private async retain(): Promise<void> {
    try {
      const removed = await applyRetention(this.cfg.repository, this.cfg.name, {
        keep: this.cfg.retention.keep,
        pinned: this.d.store.pinnedVersions(this.cfg.name),
      });
      for (const v of removed) this.d.store.markRemoved(this.cfg.name, v);
      if (removed.length)
        this.d.log.info(`retention removed versions ${removed.join(', ')}`, { pipeline: this.cfg.name });
    } catch (e) {
      // the version is published; retention runs again after the next merge
      this.d.log.warn(`retention failed: ${(e as Error).message}`, { pipeline: this.cfg.name });
    }
  }

  /**
   * Stop taking work; let a running merge finish within `budgetMs`, else abort it at its next
   * tensor (the checkpoint goes back to the head of the queue; the partial state is discarded).
   * Only a merge that ignores the abort for 10 s more has its worker terminated.
   */
  async stop(budgetMs: number): Promise<void> {
    this.stopping = true;
    const loop = this.loop;
    if (!loop) return;
    let hard: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      this.d.log.warn(`shutdown budget of ${budgetMs / 1000} s used up: abandoning the running merge`, {
        pipeline: this.cfg.name,
      });
      this.abort.abort();
      this.running?.abort();
      hard = setTimeout(() => {
        this.d.log.warn('the running merge did not stop within 10 s of the abort: terminating its worker', {
          pipeline: this.cfg.name,
        });
        void this.running?.terminate();
      }, 10_000);
    }, budgetMs);
    try {
      await loop;
    } finally {
      clearTimeout(timer);
      clearTimeout(hard);
    }
  }
}

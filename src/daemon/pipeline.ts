import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { PipelineConfig } from '../config/index.js';
import { EngineFatalError } from '../engine/index.js';
import { InputError } from '../io/types.js';
import {
  commitGeneration,
  committedGeneration,
  discardAfter,
  generationDir,
  pruneGenerations,
} from '../merge/state.js';
import type { MergeProgress } from '../merge/runner.js';
import {
  beginVersion,
  discardVersionsAbove,
  finishVersion,
  readCurrent,
  recoverRepository,
  sha256File,
  type PublishedVersion,
  type Staging,
} from '../publish/index.js';
import { checkpointFiles, SHUTDOWN_REASON, type Checkpoint } from '../store/index.js';
import { cmergeVersion } from '../util/version.js';
import { retryDelayMs, systemClock, type Clock } from './backoff.js';
import {
  DEFAULT_RUNNER_TIMINGS,
  lineageOf,
  tensorRulesOf,
  type ActiveMerge,
  type CurrentMerge,
  type MergeOutcome,
  type PipelineDeps,
  type RunnerPhase,
  type RunnerTimings,
} from './runner-types.js';
import { evaluateVersion, notifyServers, retainVersions, type AftercareDeps } from './aftercare.js';
import { archiveMerged } from './archive.js';
import { pointCurrent } from './current.js';
import { checkGate, GateFailure } from './gate.js';
import { generationsToKeep } from './generations.js';
import { OperationError } from './operations/types.js';
import { RoomPause } from './room-pause.js';
import { mergeMetrics, mergeRecord } from './metrics.js';
import { moveToQuarantine, quarantineTarget } from './intake/quarantine.js';
import { startMergeWorker, type RunningMerge } from './worker-client.js';

/** One attempt at merging and publishing a checkpoint, as its steps pass it on. */
interface MergeAttempt {
  checkpoint: Checkpoint;
  mergeId: number;
  /** merge step t: the lineage's length with this checkpoint */
  step: number;
  /** the version it publishes (the newest + 1) and the number of its state generation */
  version: number;
  /** the version `current` points at now: the new version's parent, the state it continues from */
  parent: number | null;
  startedAt: number;
  staging: Staging;
  active: ActiveMerge;
  /** the evaluator's scores of the candidate, when the quality gate measured them */
  scores: Record<string, number> | null;
}

/** The drain loop in progress, and whether work was signalled while it ran (it then runs again). */
interface Drain {
  done: Promise<void>;
  kickedAgain: boolean;
}

/**
 * One pipeline's merges, one at a time, in queue order (docs/architecture.md). Per checkpoint:
 * mark merging → merge in a worker into a new state generation and a staging version folder →
 * finish the version (manifest last, rename) → ONE SQLite transaction commits the merge, its
 * metrics, the state generation and the version → swap `current` → move the state's CURRENT →
 * notify, evaluate, retention. A crash anywhere is repaired by recover(): work not committed in
 * SQLite is discarded (state generations, staging and numbered folders above the recorded
 * version) and redone from the last committed state; committed work is rolled forward.
 */
export class PipelineRunner {
  private state: RunnerPhase = { kind: 'idle' };
  private drainer: Drain | null = null;
  /** an operation holds the pipeline (exclusive()): no merge starts */
  private held = false;
  /** cancels the timer that ends the current backoff (set by enter() and armBackoffTimer() only) */
  private cancelBackoffTimer: (() => void) | null = null;
  /** aborted when the shutdown budget is spent: notifiers and the merge worker stop */
  private readonly abort = new AbortController();
  private readonly clock: Clock;
  private readonly timings: RunnerTimings;
  /** the pause while the disk lacks room for the next merge */
  private readonly room: RoomPause;

  constructor(
    public cfg: PipelineConfig,
    private readonly deps: PipelineDeps,
  ) {
    this.clock = deps.clock ?? systemClock;
    this.timings = { ...DEFAULT_RUNNER_TIMINGS, ...deps.timings };
    const { store, log, events } = deps;
    this.room = new RoomPause({
      cfg: () => this.cfg,
      stateDir: this.stateDir,
      store,
      log,
      clock: this.clock,
      events,
      kick: () => this.kick(),
    });
  }

  get stateDir(): string {
    return join(this.deps.stateRoot, 'pipelines', this.cfg.name, 'state');
  }

  get phase(): RunnerPhase {
    return this.state;
  }

  /** The merge in flight, null when none. */
  get status(): CurrentMerge | null {
    return this.activeMerge?.status ?? null;
  }

  private get activeMerge(): ActiveMerge | null {
    const phase = this.state;
    return phase.kind === 'merging' || phase.kind === 'stopping' ? phase.active : null;
  }

  /**
   * Every phase change goes through here. Stopping is final: nothing leaves it (a merge finishing
   * during a stop only clears `active`). A backoff's timer is set on entry and cleared on exit.
   */
  private enter(next: RunnerPhase): void {
    if (this.state.kind === 'stopping' && next.kind !== 'stopping') return;
    this.cancelBackoffTimer?.();
    this.cancelBackoffTimer = null;
    this.state = next;
    if (next.kind === 'backoff') this.armBackoffTimer(next.until);
    this.deps.onPhase?.(next);
  }

  /** The kick that ends a backoff at `until` (the one timer of the runner; an earlier one is cancelled). */
  private armBackoffTimer(until: number): void {
    this.cancelBackoffTimer?.();
    this.cancelBackoffTimer = this.clock.setTimer(() => this.kick(), Math.max(0, until - this.clock.now()), {
      weak: true,
    });
  }

  /** The merge in flight is over (published, rejected or given up): idle, or stopping without it. */
  private mergeOver(): void {
    this.enter(this.state.kind === 'stopping' ? { kind: 'stopping', active: null } : { kind: 'idle' });
  }

  /** Reconcile files with SQLite after any stop, clean or not. */
  async recover(): Promise<void> {
    const { store, log } = this.deps;
    const name = this.cfg.name;
    const committed = store.currentStateGeneration(name)?.generation ?? 0;
    // state generations written by merges that never committed
    discardAfter(this.stateDir, committed);
    if (committed > 0) {
      if (!existsSync(generationDir(this.stateDir, committed)))
        throw new Error(`${this.stateDir}: committed state generation ${committed} is missing`);
      if (committedGeneration(this.stateDir) !== committed) commitGeneration(this.stateDir, committed);
      await this.pruneStates(committed);
    }
    const report = await recoverRepository(this.cfg.repository, name, { quick: true });
    if (report.removed.length) log.info(`removed leftovers: ${report.removed.join(', ')}`, { pipeline: name });
    const latest = store.latestVersion(name)?.number ?? 0;
    // numbered folders above the recorded version were published by a merge that did not commit
    for (const version of await discardVersionsAbove(this.cfg.repository, name, latest))
      log.warn(`removed version ${version}: its merge was not committed (it will be redone)`, { pipeline: name });
    const recorded = await this.reconcileCurrent();
    // a crash between a merge's commit and its checkpoint's move to the archive: finished here
    await archiveMerged(this.cfg, store, log);
    this.room.resumeWatching();
    if (recorded > 0 && this.cfg.notifiers.length > 0 && store.notifications(name, recorded).length === 0) {
      // the daemon stopped between publication and notification: tell the servers now
      void notifyServers(this.aftercare, recorded, join(this.cfg.repository, name, String(recorded)));
    }
  }

  /**
   * `current` and SQLite's current version (after a rollback, not the newest) agree again: a swap
   * a crash interrupted is rolled forward; a `current` moved by hand to another recorded version is
   * left as it is and the pipeline paused with what to run (docs/operations.md). Returns the recorded version (0: none).
   */
  private async reconcileCurrent(): Promise<number> {
    const { store, log } = this.deps;
    const name = this.cfg.name;
    const recorded = store.currentVersion(name)?.number ?? 0;
    const current = await readCurrent(this.cfg.repository, name);
    if (recorded === 0) {
      // nothing committed yet: a `current` is one recoverRepository pointed at a version removed above
      if (current !== null) await rm(join(this.cfg.repository, name, 'current'), { force: true });
      return 0;
    }
    const pending = store.swapPending(name);
    const byHand = current !== null && current !== recorded && pending !== recorded && this.isPublished(current);
    if (byHand) {
      const reason =
        `current points at version ${current} while the merge state is at version ${recorded}: ` +
        `run "cmerge rollback ${name} ${current}" to continue from ${current}, or "cmerge resume ${name}" to continue from ${recorded}`;
      if (store.pauseState(name)?.kind !== 'current_moved') log.warn(`merging paused: ${reason}`, { pipeline: name });
      store.setPaused(name, reason, 'current_moved');
    } else if (current !== recorded || pending !== null) await pointCurrent(store, this.cfg, recorded);
    return recorded;
  }

  /** A version recorded in SQLite whose folder is still there. */
  private isPublished(version: number): boolean {
    const v = this.deps.store.version(this.cfg.name, version);
    return v !== null && v.removed_at === null && existsSync(join(v.path, 'manifest.json'));
  }

  /** Something was queued (or a backoff ended): run the queue unless already running. */
  kick(): void {
    if (this.state.kind === 'stopping') return;
    if (this.drainer) {
      this.drainer.kickedAgain = true;
      return;
    }
    const drainer: Drain = { done: Promise.resolve(), kickedAgain: false };
    this.drainer = drainer;
    drainer.done = this.drain().finally(() => {
      this.drainer = null;
      if (drainer.kickedAgain) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (await this.advance());
  }

  /**
   * The next move from the current phase. False when there is nothing to do until the next kick
   * (a new checkpoint, or the backoff's timer).
   */
  private async advance(): Promise<boolean> {
    const phase = this.state;
    switch (phase.kind) {
      case 'idle':
        return this.attemptNext(0);
      case 'backoff':
        if (this.clock.now() < phase.until) {
          // a kick before the end: systemClock's timer never fires before now() reaches `until`, but
          // one of a clock that does would leave nothing to kick the runner out of this backoff, so
          // it is set again (a second line of defence; re-setting on any other kick is harmless)
          this.armBackoffTimer(phase.until);
          return false;
        }
        if (!phase.recovered && !(await this.recoverAgain(phase))) return true;
        return this.attemptNext(phase.failures);
      case 'stopping':
        return false;
      case 'merging':
      case 'recovering':
        throw new Error(`pipeline ${this.cfg.name}: the drain loop found the runner ${phase.kind}`);
    }
  }

  /** Merge the head of the queue, if any; `failures`: attempts that failed in a row before this one. */
  private async attemptNext(failures: number): Promise<boolean> {
    if (!this.nextToMerge()) {
      if (this.state.kind !== 'idle') this.enter({ kind: 'idle' });
      return false;
    }
    const release = await this.deps.limiter.acquire();
    try {
      // looked at again: an operation may have taken the pipeline while this waited for a slot
      const next = this.nextToMerge();
      if (this.state.kind === 'stopping' || !next) return false;
      // not started when it would run out of disk: paused until there is room (RoomPause)
      if (!this.room.admits()) return false;
      await this.mergeOne(next, failures);
    } catch (e) {
      await this.mergeFailed(e as Error, failures);
    } finally {
      release();
    }
    return this.state.kind !== 'stopping';
  }

  /** The head of the queue; none while paused or while an operator's rollback or revert holds the pipeline (resume() and the operation's end kick again). */
  private nextToMerge(): Checkpoint | null {
    if (this.held || this.deps.store.pauseState(this.cfg.name)) return null;
    return this.deps.store.nextQueued(this.cfg.name);
  }

  /**
   * Anything that fails in a merge and is not the checkpoint's fault (disk full, I/O errors, the
   * engine) leaves the checkpoint at the head of the queue: the attempt is recorded as interrupted,
   * the files are reconciled with SQLite as after a crash, and the merge is retried with backoff.
   */
  private async mergeFailed(e: Error, failures: number): Promise<void> {
    const { log, metrics } = this.deps;
    const pipeline = this.cfg.name;
    const active = this.activeMerge;
    const what = active ? `merge ${active.status.step} (${active.status.checkpoint})` : 'the next merge';
    if (this.state.kind === 'stopping') {
      this.mergeOver();
      log.warn(`${what} abandoned for shutdown: the checkpoint stays queued`, { pipeline });
      await this.recoverOnce(SHUTDOWN_REASON);
      // the device was lost during the stop: the exit status must say so
      if (e instanceof EngineFatalError) this.deps.onFatal(e);
      return;
    }
    metrics?.countFailure(pipeline);
    if (e instanceof EngineFatalError) {
      // every later merge in this process would fail too: no retry here, the daemon exits
      this.enter({ kind: 'stopping', active: null });
      const lost = `${what} failed, the engine's device is lost`;
      log.error(`${lost}: the checkpoint stays queued for the restart: ${e.message}`, { pipeline });
      // after the attempt is recorded as interrupted: the checkpoint is queued for the next start
      await this.recoverOnce(e.message);
      this.deps.onFatal(e);
      return;
    }
    const delay = retryDelayMs(failures + 1, this.timings.backoff);
    const until = this.clock.now() + delay;
    log.error(`${what} failed, retrying in ${delay / 1000} s: ${e.message}`, { pipeline });
    this.enter({ kind: 'recovering', failures: failures + 1, reason: e.message });
    // at once: a full disk should not keep holding our partial files until the retry
    const recovered = await this.recoverOnce(e.message);
    this.enter({ kind: 'backoff', until, failures: failures + 1, reason: e.message, recovered });
  }

  /** A backoff ended whose recovery had failed: try it again; when it fails again, back off longer. */
  private async recoverAgain(phase: Extract<RunnerPhase, { kind: 'backoff' }>): Promise<boolean> {
    this.enter({ kind: 'recovering', failures: phase.failures, reason: phase.reason });
    const error = await this.recoverAfterFailure(phase.reason);
    if (!error) return true;
    const failures = phase.failures + 1;
    const delay = retryDelayMs(failures, this.timings.backoff);
    this.deps.log.error(`recording the failed merge failed, retrying in ${delay / 1000} s: ${error.message}`, {
      pipeline: this.cfg.name,
    });
    this.enter({ kind: 'backoff', until: this.clock.now() + delay, failures, reason: phase.reason, recovered: false });
    return false;
  }

  /** recoverAfterFailure right after the failure; true when it worked, else logged (it is tried again before the next merge). */
  private async recoverOnce(reason: string): Promise<boolean> {
    const error = await this.recoverAfterFailure(reason);
    if (error)
      this.deps.log.error(`recording the failed merge failed (tried again before the next merge): ${error.message}`, {
        pipeline: this.cfg.name,
      });
    return !error;
  }

  /**
   * After a failed merge: the attempt recorded as interrupted with `reason` (its checkpoint back at
   * the head of the queue) and the files reconciled with SQLite. The error when that fails too
   * (SQLite's own disk full...), else null.
   */
  private async recoverAfterFailure(reason: string): Promise<Error | null> {
    try {
      const open = this.deps.store.currentMerge(this.cfg.name);
      if (open) this.deps.store.abandonMerge(open.id, reason);
      await this.recover();
      return null;
    } catch (e) {
      return e as Error;
    }
  }

  /** Merge, publish and announce one checkpoint; a rejected checkpoint goes to quarantine. */
  private async mergeOne(checkpoint: Checkpoint, failures: number): Promise<void> {
    const attempt = await this.beginMerge(checkpoint, failures);
    const result = await this.runWorker(attempt);
    if (!result) return;
    let published: PublishedVersion;
    try {
      published = await this.publishVersion(attempt, result);
    } catch (e) {
      if (!(e instanceof GateFailure)) throw e;
      await this.gateRejected(attempt, e);
      return;
    }
    this.commit(attempt, result, published, await sha256File(join(published.dir, 'manifest.json')));
    await this.activate(attempt, result);
    this.announce(attempt, published);
    await archiveMerged(this.cfg, this.deps.store, this.deps.log);
    await notifyServers(this.aftercare, attempt.version, published.dir);
    await evaluateVersion(this.aftercare, attempt.version, published.dir, attempt.scores);
    await retainVersions(this.aftercare);
  }

  /** What notifiers, the evaluator and retention need. */
  get aftercare(): AftercareDeps {
    const { store, log, sse } = this.deps;
    return { cfg: this.cfg, store, log, sse, signal: this.abort.signal };
  }

  /**
   * The candidate failed the quality gate: not published (its staging folder and state generation
   * removed; the state stays at the previous generation), the checkpoint quarantined with the reason.
   */
  private async gateRejected(attempt: MergeAttempt, e: GateFailure): Promise<void> {
    await rm(attempt.staging.dir, { recursive: true, force: true });
    await rm(generationDir(this.stateDir, attempt.version), { recursive: true, force: true });
    this.reject(attempt, new InputError(attempt.checkpoint.path, e.message), 'gate_failed');
  }

  /** Version t is out: the event stream hears it, and that the merge is over. */
  private announce(attempt: MergeAttempt, published: PublishedVersion): void {
    const pipeline = this.cfg.name;
    const { version, parent, step, checkpoint } = attempt;
    this.deps.events?.emit({ type: 'version_published', pipeline, version, parent, path: published.dir });
    const seconds = (this.clock.now() - attempt.startedAt) / 1000;
    this.deps.events?.emit({ type: 'merge_finished', pipeline, checkpoint: checkpoint.name, step, version, seconds });
  }

  /** the base model's sha256, as manifests record it */
  get baseSha256(): string {
    return this.deps.baseSha256;
  }

  /** Keep the committed generation and, along its lineage, one every state.keep_every steps (rollback and revert replay from them). */
  async pruneStates(committed: number): Promise<void> {
    const lineage = this.deps.store.mergedCheckpoints(this.cfg.name).map((c) => c.sha256 ?? '');
    await pruneGenerations(
      this.stateDir,
      generationsToKeep(this.stateDir, committed, lineage, this.cfg.state.keep_every),
    );
  }

  /** The checkpoint marked merging in SQLite (its step t assigned) and an empty staging folder for version t. */
  private async beginMerge(checkpoint: Checkpoint, failures: number): Promise<MergeAttempt> {
    const cfg = this.cfg;
    const { merge } = this.deps.store.markMerging(checkpoint.id, {
      method: cfg.method,
      params: cfg.params,
      engine: cfg.engine.name,
    });
    const step = merge.step;
    const version = (this.deps.store.latestVersion(cfg.name)?.number ?? 0) + 1;
    const parent = this.deps.store.currentVersion(cfg.name)?.number ?? null;
    const startedAt = this.clock.now();
    const status = { checkpoint: checkpoint.name, step, started_at: new Date(startedAt).toISOString(), progress: null };
    const active: ActiveMerge = { status, worker: null };
    this.enter({ kind: 'merging', active, failures });
    this.deps.log.info(`merge ${step} started: ${checkpoint.name}`, {
      pipeline: cfg.name,
      step,
      version,
      method: cfg.method,
    });
    this.deps.events?.emit({ type: 'merge_started', pipeline: cfg.name, checkpoint: checkpoint.name, step });
    const staging = await beginVersion(cfg.repository, cfg.name, version);
    return { checkpoint, mergeId: merge.id, step, version, parent, startedAt, staging, active, scores: null };
  }

  /**
   * The merge in a worker thread, into a new state generation and the staging folder. null when
   * the checkpoint turned out bad (quarantined); any other failure is thrown, the staging folder removed.
   */
  private async runWorker(attempt: MergeAttempt): Promise<MergeOutcome | null> {
    const cfg = this.cfg;
    const { checkpoint } = attempt;
    try {
      const from = this.deps.store.currentStateGeneration(cfg.name)?.generation ?? 0;
      const worker = this.startWorker(
        [checkpoint],
        from,
        attempt.version,
        attempt.staging.dir,
        this.progressHandler(attempt),
      );
      attempt.active.worker = worker;
      // the shutdown budget ran out before the worker started
      if (this.abort.signal.aborted) worker.abort();
      const result = await worker.result;
      const mergeSeconds = (this.clock.now() - attempt.startedAt) / 1000;
      return { ...result, metrics: mergeMetrics(result.report, result.report.steps[0]), mergeSeconds };
    } catch (e) {
      // asynchronously: a partial output can be hundreds of MB
      await rm(attempt.staging.dir, { recursive: true, force: true });
      if (!(e instanceof InputError)) throw e;
      // the worker removed what it wrote; the version number is free again
      this.reject(attempt, e);
      return null;
    } finally {
      attempt.active.worker = null;
    }
  }

  /**
   * A merge worker folding `checkpoints` (in order) into the state of generation `from` (0: the
   * base), writing generation `to` (the states between are intermediate) and, with `out`, the model.
   * The merges, and the replays of rollback and revert, run through here with the same settings.
   */
  startWorker(
    checkpoints: readonly Checkpoint[],
    from: number,
    to: number,
    out: string | undefined,
    onProgress: (p: MergeProgress) => void = () => undefined,
  ): RunningMerge {
    const cfg = this.cfg;
    return startMergeWorker(
      {
        base: cfg.base,
        stateDir: this.stateDir,
        method: cfg.method,
        params: cfg.params,
        checkpoints: checkpoints.map(checkpointFiles),
        out,
        fromGeneration: from,
        toGeneration: to,
        commit: false,
        rules: tensorRulesOf(cfg.tensors),
        maxShardBytes: cfg.max_shard_bytes,
        outDtype: cfg.out_dtype,
        maxTaskNormRatio: cfg.max_task_vector_norm_ratio,
        sha256: Object.fromEntries(checkpoints.map((c) => [checkpointFiles(c), c.sha256 ?? ''])),
        sketch: true,
        engine: cfg.engine,
        threads: this.deps.threads,
        progressMessageMs: this.timings.progressMessageMs,
      },
      onProgress,
      this.deps.announceEngine ?? ((line, level) => void this.deps.log.log(level, line)),
    );
  }

  /** The checkpoint is bad (found during the merge): rejected in SQLite, moved to quarantine. */
  private reject(attempt: MergeAttempt, e: InputError, type: 'rejected' | 'gate_failed' = 'rejected'): void {
    const { checkpoint, step } = attempt;
    const target = quarantineTarget(this.cfg.drop, checkpoint.path);
    this.mergeOver();
    this.deps.store.failMerge(attempt.mergeId, e.reason, target);
    moveToQuarantine(checkpoint.path, target, e.reason);
    this.deps.log.warn(`rejected ${checkpoint.name} during merge ${step}: ${e.reason}`, {
      pipeline: this.cfg.name,
      quarantine: target,
    });
    this.deps.metrics?.countRejection(this.cfg.name);
    this.deps.events?.emit({ type, pipeline: this.cfg.name, checkpoint: checkpoint.name, reason: e.reason });
  }

  /** The worker's progress: kept for status, recorded in SQLite for `cmerge status` now and then, each pass's end logged. */
  private progressHandler(attempt: MergeAttempt): (progress: MergeProgress) => void {
    const { store, log } = this.deps;
    const pipeline = this.cfg.name;
    let recordedAt = -Infinity;
    return (progress) => {
      attempt.active.status.progress = progress;
      const now = this.clock.now();
      const passDone = progress.index + 1 === progress.total;
      if (now - recordedAt >= this.timings.progressRecordMs || passDone) {
        recordedAt = now;
        const { phase, total } = progress;
        const { step, checkpoint } = attempt;
        this.deps.events?.emit({
          type: 'merge_progress',
          pipeline,
          checkpoint: checkpoint.name,
          step,
          phase,
          done: progress.index + 1,
          total,
        });
        try {
          store.setMergeProgress(attempt.mergeId, {
            phase: progress.phase,
            done: progress.index + 1,
            total: progress.total,
            at: new Date(now).toISOString(),
          });
        } catch (e) {
          log.warn(`merge ${attempt.step}: progress not recorded: ${(e as Error).message}`, { pipeline });
        }
      }
      if (passDone)
        log.info(`merge ${attempt.step}: ${progress.phase} pass done (${progress.total} tensors)`, {
          pipeline,
          step: attempt.step,
          seconds: (now - attempt.startedAt) / 1000,
        });
    };
  }

  /** The staging folder completed (base files, card, manifest last) and renamed to version t. */
  private async publishVersion(attempt: MergeAttempt, outcome: MergeOutcome): Promise<PublishedVersion> {
    const { report, metrics } = outcome;
    const cfg = this.cfg;
    const { checkpoint, staging } = attempt;
    this.deps.metrics?.setEngine(cfg.name, report.engine_info);
    const merged = this.deps.store.mergedCheckpoints(cfg.name).map((c) => lineageOf(c, c.merged_at ?? ''));
    const mergedAt = new Date(this.clock.now()).toISOString();
    return finishVersion(staging, {
      parent: attempt.parent,
      beforeRename: async (dir) => {
        const lineage = [...this.deps.store.mergedCheckpoints(cfg.name), checkpoint];
        attempt.scores = (await checkGate(cfg, this.deps.store, { lineage, retention: report.retention, dir })).scores;
      },
      method: cfg.method,
      params: cfg.params,
      base: { path: cfg.base, sha256: this.deps.baseSha256 },
      baseModelId: cfg.base_model_id,
      // the merge found the checkpoint's dtype; the store records it at commit, after this
      checkpoints: [...merged, lineageOf({ ...checkpoint, dtype: report.steps[0].dtype }, mergedAt)],
      engine: report.engine,
      metrics: metrics.model,
      cmergeVersion: cmergeVersion(),
      knownSha256: Object.fromEntries(
        Object.entries(report.out_sha256).map(([path, hash]) => [relative(staging.dir, path), hash]),
      ),
    });
  }

  /** The merge, its metrics, its state generation and version t: committed in SQLite in one transaction. */
  private commit(
    attempt: MergeAttempt,
    { report, peakRssBytes, metrics, mergeSeconds }: MergeOutcome,
    published: PublishedVersion,
    manifestSha256: string,
  ): void {
    const { version, mergeId } = attempt;
    const elapsed = (this.clock.now() - attempt.startedAt) / 1000;
    this.deps.store.commitMergeAndVersion(
      {
        merge_id: mergeId,
        ...mergeRecord({ report, peakRssBytes, metrics, mergeSeconds }, this.stateDir, version, elapsed),
      },
      {
        pipeline: this.cfg.name,
        number: version,
        parent: attempt.parent,
        path: published.dir,
        files: published.manifest.files,
        manifest_sha256: manifestSha256,
      },
    );
  }

  /** Version t becomes `current`, state generation t the state's CURRENT; the merge is over. */
  private async activate(attempt: MergeAttempt, outcome: MergeOutcome): Promise<void> {
    const cfg = this.cfg;
    const { step, version } = attempt;
    const { report, peakRssBytes, metrics, mergeSeconds } = outcome;
    await pointCurrent(this.deps.store, cfg, version);
    commitGeneration(this.stateDir, version);
    await this.pruneStates(version);
    this.mergeOver();
    const totalSeconds = (this.clock.now() - attempt.startedAt) / 1000;
    this.deps.metrics?.observeMerge(cfg.name, totalSeconds);
    const gpu = report.gpu
      ? {
          gpu_s: report.gpu.gpu_seconds,
          peak_device_mib: Math.round(report.gpu.peak_device_bytes / 2 ** 20),
          cpu_fallbacks: report.gpu.cpu_fallbacks,
        }
      : {};
    this.deps.log.info(`published version ${version}: ${attempt.checkpoint.name}`, {
      pipeline: cfg.name,
      step,
      version,
      parent: attempt.parent,
      engine: report.engine,
      merge_s: mergeSeconds,
      total_s: totalSeconds,
      peak_rss_mib: Math.round(peakRssBytes / 2 ** 20),
      ...gpu,
      ...metrics.scalars,
    });
  }

  /**
   * Run an operator's rollback or revert with merging held off; refused (nothing changed) while a
   * merge runs, another operation holds the pipeline, or the daemon stops. Merging resumes after.
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const phase = this.state;
    if (phase.kind === 'stopping') throw new OperationError('conflict', 'the daemon is stopping');
    if (phase.kind === 'merging' || phase.kind === 'recovering' || this.held)
      throw new OperationError(
        'conflict',
        phase.kind === 'merging'
          ? `merge ${phase.active.status.step} (${phase.active.status.checkpoint}) is running: retry when it is over, or pause first`
          : `pipeline ${this.cfg.name} is busy: retry in a moment`,
      );
    this.held = true;
    const release = await this.deps.limiter.acquire();
    try {
      return await fn();
    } finally {
      release();
      this.held = false;
      this.kick();
    }
  }

  /**
   * Stop taking work; let a running merge finish within `budgetMs`, else abort it at its next
   * tensor (the checkpoint goes back to the head of the queue; the partial state is discarded).
   * Only a merge that ignores the abort for `terminateAfterAbortMs` more has its worker terminated.
   */
  async stop(budgetMs: number): Promise<void> {
    this.room.stop();
    this.enter({ kind: 'stopping', active: this.activeMerge });
    const drainer = this.drainer;
    if (!drainer) return;
    const cancelTimers = this.abortAfter(budgetMs);
    try {
      await drainer.done;
    } finally {
      cancelTimers();
    }
  }

  /** Timers that abort the running merge once `budgetMs` is spent, and terminate its worker later; returns their cancel. */
  private abortAfter(budgetMs: number): () => void {
    const pipeline = this.cfg.name;
    let cancelTerminate = (): void => undefined;
    const cancelAbort = this.clock.setTimer(() => {
      this.deps.log.warn(`shutdown budget of ${budgetMs / 1000} s used up: abandoning the running merge`, { pipeline });
      this.abort.abort();
      this.activeMerge?.worker?.abort();
      const graceMs = this.timings.terminateAfterAbortMs;
      cancelTerminate = this.clock.setTimer(() => {
        this.deps.log.warn(
          `the running merge did not stop within ${graceMs / 1000} s of the abort: terminating its worker`,
          { pipeline },
        );
        void this.activeMerge?.worker?.terminate();
      }, graceMs);
    }, budgetMs);
    return () => {
      cancelAbort();
      cancelTerminate();
    };
  }
}

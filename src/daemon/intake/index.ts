import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { systemClock, type Clock } from '../backoff.js';
import { quickSignature, safeStat } from './entry-stats.js';
import { intakeTimings, type IntakeOptions, type IntakeTimings } from './options.js';
import { moveToQuarantine, quarantineEntry, type RejectedEntry } from './quarantine.js';
import { Candidates, type ReadyEntry } from './readiness.js';
import { FailedIntakes } from './retries.js';
import { validateEntry, type Verdict } from './validation.js';
import { WaitingLedger } from './waiting.js';
import { DropWatcher } from './watcher.js';

export { DEFAULT_INTAKE_TIMINGS, type IntakeOptions, type IntakeTimings } from './options.js';

/**
 * Intake of one pipeline's drop folder (docs/architecture.md, intake): the watcher names
 * candidate entries, readiness decides when one is written completely, validation hashes and
 * checks it and queues it in the store, or it goes to quarantine with its reason recorded.
 * Candidates are taken one at a time, so the queue order is the order they became complete.
 */
export class Intake {
  private readonly timings: IntakeTimings;
  private readonly clock: Clock;
  private readonly watcher: DropWatcher;
  private readonly candidates: Candidates;
  /** the entries waiting to be complete, in SQLite (status, metrics, restarts) */
  private readonly ledger: WaitingLedger;
  private readonly failed: FailedIntakes;
  /** taken, being validated */
  private readonly inFlight = new Set<string>();
  /** entries already taken, with the size signature they had: arrivals unchanged since are ignored */
  private readonly taken = new Map<string, string>();
  /** the intakes in progress, one after the other */
  private chain: Promise<void> = Promise.resolve();
  private realDrop = '';

  constructor(private readonly options: IntakeOptions) {
    this.timings = intakeTimings(options);
    this.clock = options.clock ?? systemClock;
    const incompleteTimeoutMs = this.timings.incompleteTimeoutMs;
    this.ledger = new WaitingLedger({
      store: options.store,
      pipeline: options.pipeline.name,
      log: options.log,
      timeoutMs: incompleteTimeoutMs,
    });
    this.candidates = new Candidates(
      { settleMs: options.pipeline.settle_ms, incompleteTimeoutMs },
      options.log,
      this.ledger,
    );
    this.failed = new FailedIntakes(this.timings.retry);
    this.watcher = new DropWatcher({
      drop: options.pipeline.drop,
      clock: this.clock,
      tickMs: this.timings.tickMs,
      rescanMs: this.timings.rescanMs,
      log: options.log,
      onEntry: (path) => this.arrived(path),
      onTick: (now) => this.tick(now),
    });
  }

  get drop(): string {
    return this.options.pipeline.drop;
  }

  /** candidates seen but not yet taken (waiting to settle or complete), or being validated */
  get pending(): number {
    return this.candidates.size + this.inFlight.size;
  }

  /** Resolves once the watcher is ready and the folder listed (see DropWatcher.start). */
  async start(): Promise<void> {
    mkdirSync(this.drop, { recursive: true });
    this.realDrop = realpathSync(this.drop);
    this.ledger.load(this.drop);
    await this.watcher.start();
  }

  async stop(): Promise<void> {
    await this.watcher.stop();
    await this.drained();
  }

  /** Resolves once the intakes begun so far are finished (queued, rejected or failed). */
  drained(): Promise<void> {
    return this.chain;
  }

  private arrived(path: string): void {
    const now = this.clock.now();
    if (this.inFlight.has(path) || this.failed.waiting(path, now)) return;
    const signature = this.taken.get(path);
    // unchanged since taken and still on record as taken: nothing to do. A rejected one seen again
    // was put back (quarantined again, or a new attempt); a requeued one has no record (taken again)
    const unchanged = signature !== undefined && signature === quickSignature(path);
    const record = unchanged ? this.options.store.findByPath(this.options.pipeline.name, path) : null;
    if (record && record.status !== 'rejected') return;
    this.candidates.add(path, now);
  }

  private tick(now: number): void {
    for (const path of this.failed.due(now)) this.arrived(path);
    for (const entry of this.candidates.poll(now, this.realDrop)) this.begin(entry);
  }

  private begin({ path, rejectReason }: ReadyEntry): void {
    this.inFlight.add(path);
    this.taken.set(path, quickSignature(path));
    this.chain = this.chain
      .then(() => this.take(path, rejectReason))
      .then(() => this.failed.succeeded(path))
      .catch((e) => this.failedIntake(path, e as Error))
      .finally(() => this.inFlight.delete(path));
  }

  /** Not the checkpoint's fault (SQLite or the disk): forgotten, so that it is taken again after the wait. */
  private failedIntake(path: string, e: Error): void {
    this.taken.delete(path);
    const delay = this.failed.record(path, this.clock.now());
    this.options.log.error(`intake of ${path} failed, retrying in ${delay / 1000} s: ${e.message}`);
  }

  private async take(path: string, rejectReason: string | null): Promise<void> {
    const { store, pipeline, base } = this.options;
    // an adapter's base_model_name_or_path is compared with the base folder's config.json
    const baseDir = safeStat(pipeline.base)?.isDirectory() ? pipeline.base : null;
    const verdict = await validateEntry({ store, pipeline: pipeline.name, base, baseDir }, path, rejectReason);
    this.act(verdict);
  }

  private act(verdict: Verdict): void {
    const { pipeline, log } = this.options;
    switch (verdict.kind) {
      case 'skip':
        return;
      case 'unmoved-rejection':
        if (!existsSync(verdict.target))
          log.warn(
            `${basename(verdict.path)} was rejected before (${verdict.reason}): quarantined again; to merge it, run "cmerge requeue ${pipeline.name} ${basename(verdict.path)}"`,
            { pipeline: pipeline.name },
          );
        return void moveToQuarantine(verdict.path, verdict.target, verdict.reason);
      case 'reject':
        return this.reject(verdict.entry, verdict.reason);
      case 'queued': {
        const { name, sha256, size, adapter } = verdict.entry;
        for (const warning of verdict.warnings) log.warn(warning, { pipeline: pipeline.name, checkpoint: name });
        log.info(`queued ${name}`, {
          pipeline: pipeline.name,
          sha256,
          bytes: size,
          queue_position: verdict.queuePosition,
          ...(adapter
            ? { adapter: { r: adapter.r, alpha: adapter.alpha, target_tensors: adapter.target_tensors } }
            : {}),
        });
        this.options.onQueued();
      }
    }
  }

  private reject(entry: RejectedEntry, reason: string): void {
    const target = quarantineEntry(this.options.store, this.options.pipeline, entry, reason);
    this.options.log.warn(`rejected ${entry.name}: ${reason}`, {
      pipeline: this.options.pipeline.name,
      quarantine: target,
    });
    this.options.onRejected?.();
  }
}

import { mkdirSync } from 'node:fs';
import { loadConfig, type Config, type PipelineConfig } from '../config/index.js';
import { openModel } from '../io/model.js';
import type { ModelReader } from '../io/types.js';
import { SseHubs } from '../publish/index.js';
import { openStore, type Store } from '../store/index.js';
import { configureLog, log } from '../util/log.js';
import { startApi, type ApiHandle } from './api/server.js';
import { checkpointSha256 } from './checkpoint-hash.js';
import { checkEngines, EngineLines } from './engine-check.js';
import { DaemonEvents } from './events.js';
import { Intake } from './intake/index.js';
import type { Clock } from './backoff.js';
import { Limiter } from './limiter.js';
import { PipelineOperations, type Operations } from './operations/index.js';
import { acquireStateLock } from './state-lock.js';
import { DaemonMetrics, type PipelineGauges } from './metrics-server.js';
import { PipelineRunner } from './pipeline.js';
import type { RunnerTimings } from './runner-types.js';
import { loadDaemonConfig } from './preflight.js';

/**
 * The daemon: one store, and per pipeline an intake (drop folder → queue) and a runner
 * (queue → merge → version). Start recovers every pipeline before taking new work.
 */
interface Pipeline {
  cfg: PipelineConfig;
  base: ModelReader;
  intake: Intake;
  runner: PipelineRunner;
}

/** How long a checkpoint may stay incomplete before it is rejected, unless DaemonOptions say otherwise. */
export const DEFAULT_INCOMPLETE_TIMEOUT_MS = 600_000;

export interface DaemonOptions {
  /**
   * how long a checkpoint may stay incomplete before it is rejected, for the pipelines whose config
   * does not set `intake.incomplete_timeout_s` (default 10 min)
   */
  incompleteTimeoutMs?: number;
  /** a merge hit EngineFatalError (the device is lost for this process): the daemon must exit */
  onFatal?: (e: Error) => void;
  /** the pipeline runners' waits (default DEFAULT_RUNNER_TIMINGS) */
  runnerTimings?: Partial<RunnerTimings>;
  /** the pipeline runners' clock (default: the system clock) */
  clock?: Clock;
}

export class Daemon {
  private config!: Config;
  private store!: Store;
  private readonly limiter = new Limiter(1);
  private readonly sse = new SseHubs();
  private pipelines: Pipeline[] = [];
  private metrics: DaemonMetrics | null = null;
  /** what the runners announce (the API's event stream listens) */
  readonly events = new DaemonEvents();
  /** rollback, revert, pin, pause...: the API's mutations call these */
  operations!: Operations;
  private lock: { release(): void } | null = null;
  /** the HTTP API on the unix socket in state_dir, and on TCP with `api:` */
  private api: ApiHandle | null = null;
  /** the engine lines logged: once at start and when they change, not per merge */
  private readonly engineLines = new EngineLines();

  constructor(
    private readonly configPath: string,
    private readonly opts: DaemonOptions = {},
  ) {}

  async start(): Promise<void> {
    // before anything is created or opened: the whole config, then the engines (`engine: cuda`
    // without a usable GPU refuses to start)
    this.config = await loadDaemonConfig(this.configPath);
    configureLog({ stream: 'stdout', level: this.config.log_level });
    checkEngines(this.config, this.engineLines);
    mkdirSync(this.config.state_dir, { recursive: true });
    // one writer of the state at a time: a second daemon, or an operator command, is refused
    this.lock = acquireStateLock(this.config.state_dir);
    try {
      await this.startLocked();
    } catch (e) {
      // a start that failed leaves nothing held: the next try (or an operator command) may take the state
      await this.api?.close();
      await this.stopPipelines(0).catch(() => undefined);
      await this.metrics?.close();
      this.store?.close();
      this.lock.release();
      this.lock = null;
      throw e;
    }
  }

  private async startLocked(): Promise<void> {
    this.store = openStore(this.config.db_path);
    const requeued = this.store.recoverInterrupted();
    for (const c of requeued)
      log.warn(`merge of ${c.name} was interrupted: it will be redone from the last committed state`);
    if (this.config.metrics_port !== undefined) {
      this.metrics = new DaemonMetrics(() => this.gauges());
      const port = await this.metrics.listen(this.config.metrics_port, this.config.metrics_host);
      log.info(`metrics on http://${this.config.metrics_host}:${port}/metrics`);
    }
    this.operations = new PipelineOperations({
      store: this.store,
      log,
      events: this.events,
      via: 'api',
      runner: (name) => this.pipelines.find((p) => p.cfg.name === name)?.runner,
    });
    await this.startPipelines();
    // last: operator commands reach a daemon that has recovered and runs its pipelines
    this.api = await startApi({
      store: this.store,
      operations: this.operations,
      events: this.events,
      log,
      stateDir: this.config.state_dir,
      api: this.config.api,
      pipelines: () => this.config.pipelines.map((p) => p.name),
    });
    log.info(`cmerge daemon ready: ${this.pipelines.map((p) => p.cfg.name).join(', ')}`, {
      config: this.config.file,
      state_dir: this.config.state_dir,
    });
  }

  private async startPipelines(): Promise<void> {
    this.limiter.setLimit(this.config.max_concurrent_merges);
    for (const cfg of this.config.pipelines) {
      const plog = log.child({ pipeline: cfg.name });
      const base = openModel(cfg.base);
      const baseSha256 = await checkpointSha256(cfg.base);
      const onFatal = (e: Error) =>
        this.opts.onFatal ? this.opts.onFatal(e) : log.error(`engine failure: ${e.message}`);
      const runner = new PipelineRunner(cfg, {
        store: this.store,
        limiter: this.limiter,
        log: plog,
        stateRoot: this.config.state_dir,
        sse: this.sse,
        threads: this.config.threads,
        baseSha256,
        metrics: this.metrics,
        onFatal,
        announceEngine: this.engineLines.announce,
        clock: this.opts.clock,
        timings: this.opts.runnerTimings,
        events: this.events,
      });
      const engine = this.store.lastEngine(cfg.name);
      if (engine) this.metrics?.setEngine(cfg.name, engine.info);
      await runner.recover();
      for (const n of cfg.notifiers) if (n.type === 'sse') await this.sse.get(n.port, n.host);
      const intake = new Intake({
        pipeline: cfg,
        store: this.store,
        base,
        log: plog,
        incompleteTimeoutMs: this.incompleteTimeoutMs(cfg),
        onQueued: () => runner.kick(),
        onRejected: () => this.metrics?.countRejection(cfg.name),
      });
      this.pipelines.push({ cfg, base, intake, runner });
      await intake.start();
      runner.kick();
    }
  }

  /** The pipeline's `intake.incomplete_timeout_s`, else --incomplete-timeout, else 10 min (README, intake). */
  private incompleteTimeoutMs(cfg: PipelineConfig): number {
    const configured = cfg.intake.incomplete_timeout_s;
    if (configured !== undefined) return configured * 1000;
    return this.opts.incompleteTimeoutMs ?? DEFAULT_INCOMPLETE_TIMEOUT_MS;
  }

  private async stopPipelines(budgetMs: number): Promise<void> {
    await Promise.all(this.pipelines.map((p) => p.intake.stop()));
    await Promise.all(this.pipelines.map((p) => p.runner.stop(budgetMs)));
    for (const p of this.pipelines) p.base.close();
    this.pipelines = [];
  }

  /** Stop intake, finish or abandon running merges within the budget (default: shutdown_budget_s), close. */
  async stop(budgetMs = this.config.shutdown_budget_s * 1000): Promise<void> {
    // first: no operator command may start while the pipelines stop
    await this.api?.close();
    this.api = null;
    await this.stopPipelines(budgetMs);
    await this.sse.closeAll();
    await this.metrics?.close();
    this.store.close();
    this.lock?.release();
    this.lock = null;
    log.info('cmerge daemon stopped');
  }

  /**
   * SIGHUP: load the config again; when it is valid, restart the pipelines with it (running
   * merges finish first); when it is not, keep running on the old one.
   */
  async reload(): Promise<void> {
    let next: Config;
    try {
      next = loadConfig(this.configPath);
      checkBases(next);
      checkEngines(next, this.engineLines);
    } catch (e) {
      log.error(`reload refused, keeping the running config: ${(e as Error).message}`);
      return;
    }
    await this.stopPipelines(this.config.shutdown_budget_s * 1000);
    this.config = next;
    configureLog({ stream: 'stdout', level: next.log_level });
    await this.startPipelines();
    log.info('configuration reloaded', { pipelines: next.pipelines.map((p) => p.name) });
  }

  /** One line for systemd's STATUS: queue lengths and the running merges with progress. */
  statusLine(): string {
    const parts = this.pipelines.map((p) => {
      const queued = this.store.queued(p.cfg.name).length;
      const current = p.runner.status;
      if (!current) return `${p.cfg.name}: ${queued} queued`;
      const progress = current.progress
        ? ` ${current.progress.phase} ${Math.round((100 * (current.progress.index + 1)) / current.progress.total)}%`
        : '';
      return `${p.cfg.name}: merging ${current.checkpoint} (step ${current.step}${progress}), ${queued} queued`;
    });
    return parts.join('; ');
  }

  private gauges(): Record<string, PipelineGauges> {
    const out: Record<string, PipelineGauges> = {};
    for (const p of this.pipelines) {
      const current = p.runner.status;
      out[p.cfg.name] = {
        queued: this.store.queued(p.cfg.name).length,
        waiting: this.store.waiting(p.cfg.name).length,
        currentVersion: this.store.latestVersion(p.cfg.name)?.number ?? null,
        mergingProgress: current
          ? current.progress
            ? (current.progress.index + 1) / current.progress.total
            : 0
          : null,
      };
    }
    return out;
  }
}

/** Every pipeline's base model opens: checked before a reload stops the running pipelines. */
function checkBases(config: Config): void {
  for (const p of config.pipelines) {
    try {
      openModel(p.base).close();
    } catch (e) {
      const msg = (e as Error).message;
      throw new Error(`pipeline ${p.name}: base ${msg.includes(p.base) ? msg : `${p.base}: ${msg}`}`);
    }
  }
}

import { ConfigError } from '../config/index.js';
import { log } from '../util/log.js';
import { Daemon, type DaemonOptions } from './daemon.js';
import { takeEarlySignals } from './early-signals.js';
import { sdNotify } from './systemd-notify.js';

/** The waits of the daemon's process lifecycle, all in ms. */
export interface LifecycleTimings {
  /** how often systemd's STATUS line is refreshed (default 2 s) */
  statusIntervalMs: number;
  /** after an engine failure: how long the stop may take before the process exits anyway (default 30 s) */
  fatalExitMs: number;
  /** the shortest WATCHDOG interval (default 0.5 s); otherwise half of systemd's WATCHDOG_USEC */
  minWatchdogMs: number;
}

export const DEFAULT_LIFECYCLE_TIMINGS: Readonly<LifecycleTimings> = {
  statusIntervalMs: 2_000,
  fatalExitMs: 30_000,
  minWatchdogMs: 500,
};

export interface RunDaemonOptions extends DaemonOptions {
  /** default: DEFAULT_LIFECYCLE_TIMINGS */
  lifecycle?: Partial<LifecycleTimings>;
}

/**
 * Runs the daemon until SIGTERM/SIGINT. systemd: READY once recovered and watching, STATUS every
 * few seconds, WATCHDOG at half the watchdog interval while the event loop turns, RELOADING on
 * SIGHUP, STOPPING on shutdown. Signal handlers are installed before start-up, so a SIGTERM during
 * recovery still ends in a clean exit 0 (once start-up is done) and a SIGHUP waits for it.
 * A lost GPU (EngineFatalError) stops the daemon at once and exits 1, for systemd to restart it.
 * Resolves with the exit code.
 */
export async function runDaemon(configPath: string, opts: RunDaemonOptions = {}): Promise<number> {
  const lifecycle = new DaemonLifecycle(configPath, opts);
  lifecycle.handleSignals();
  try {
    await lifecycle.startedOrStopped();
  } catch (e) {
    // start-up failed (bad config, unreadable state...): nothing to stop; one line per config problem
    const lines = e instanceof ConfigError ? e.message.split('\n') : [(e as Error).message];
    for (const line of lines) log.error(`cmerge daemon failed to start: ${line}`);
    return 1;
  }
  lifecycle.announceReady();
  return lifecycle.exited;
}

/** systemd notification; a failure to send is logged, never thrown. */
function notify(fields: Record<string, string>): void {
  try {
    sdNotify(fields);
  } catch (e) {
    log.debug(`sd_notify failed: ${(e as Error).message}`);
  }
}

/** One daemon's start, reloads and stop, in order, and its systemd heartbeats. */
class DaemonLifecycle {
  private readonly daemon: Daemon;
  private readonly timings: LifecycleTimings;
  private statusTimer: NodeJS.Timeout | null = null;
  private watchdogTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private failed = false;
  private resolveExit!: (code: number) => void;
  /** the exit code, once stopped */
  readonly exited = new Promise<number>((resolve) => (this.resolveExit = resolve));
  /** every start, reload and stop runs after the previous one: a signal never interrupts start-up */
  private chain: Promise<void>;

  constructor(configPath: string, opts: RunDaemonOptions) {
    this.timings = { ...DEFAULT_LIFECYCLE_TIMINGS, ...opts.lifecycle };
    this.daemon = new Daemon(configPath, { ...opts, onFatal: (e) => this.fatal(e) });
    this.chain = this.daemon.start();
  }

  /** Start-up, and whatever signals queued behind it so far; rejects when start-up failed and no stop was queued. */
  startedOrStopped(): Promise<void> {
    return this.chain;
  }

  handleSignals(): void {
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGINT', () => this.stop('SIGINT'));
    process.on('SIGHUP', () => this.reload());
    // signals that came while the modules were still loading (bin/cmerge.js kept them)
    for (const signal of takeEarlySignals()) {
      if (signal === 'SIGHUP') this.reload();
      else if (!this.stopping) this.stop(signal);
    }
  }

  /** READY, then STATUS and WATCHDOG heartbeats (unless a stop came during start-up). */
  announceReady(): void {
    if (this.stopping) return;
    notify({ READY: '1', STATUS: this.daemon.statusLine() });
    this.statusTimer = setInterval(() => notify({ STATUS: this.daemon.statusLine() }), this.timings.statusIntervalMs);
    const usec = Number(process.env.WATCHDOG_USEC ?? 0);
    if (usec > 0)
      this.watchdogTimer = setInterval(
        () => notify({ WATCHDOG: '1' }),
        Math.max(this.timings.minWatchdogMs, usec / 2000),
      );
  }

  private shutdown(budgetMs?: number): void {
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.chain = this.chain
      .catch(() => undefined)
      .then(() => this.daemon.stop(budgetMs))
      .then(
        () => this.resolveExit(this.failed ? 1 : 0),
        (e) => {
          log.error(`shutdown failed: ${(e as Error).message}`);
          this.resolveExit(1);
        },
      );
  }

  private stop(signal: string): void {
    if (this.stopping) {
      log.warn(`${signal} again during shutdown: exiting now`);
      process.exit(1);
    }
    log.info(`${signal}: stopping intake, finishing or abandoning the running merge`);
    notify({ STOPPING: '1', STATUS: 'stopping' });
    this.shutdown();
  }

  /**
   * The device is lost for the whole process: other merges would fail too, so they are abandoned
   * at once (their checkpoints stay queued) and the daemon exits 1 for systemd to restart it.
   */
  private fatal(e: Error): void {
    log.error(`engine failure, exiting for a restart: ${e.message}`);
    if (this.failed) return;
    this.failed = true;
    notify({ STOPPING: '1', STATUS: `engine failure: ${e.message}` });
    // a stop that hangs on the lost device must not keep the process (and the GPU) forever
    setTimeout(() => process.exit(1), this.timings.fatalExitMs).unref();
    if (!this.stopping) this.shutdown(0);
  }

  private reload(): void {
    if (this.stopping) return;
    log.info('SIGHUP: reloading the configuration');
    notify({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) });
    this.chain = this.chain
      .then(() => this.daemon.reload())
      // what loadConfig and the base check could not foresee; never an unhandled rejection
      .catch((e) => void log.error(`reload failed: ${(e as Error).message}`))
      .finally(() => notify({ READY: '1', STATUS: this.daemon.statusLine() }));
  }
}

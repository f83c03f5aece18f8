import { log } from '../util/log.js';
import { Daemon, type DaemonOptions } from './daemon.js';
import { takeEarlySignals } from './early-signals.js';
import { sdNotify } from './systemd-notify.js';

/**
 * Runs the daemon until SIGTERM/SIGINT. systemd: READY once recovered and watching, STATUS every
 * few seconds, WATCHDOG at half the watchdog interval while the event loop turns, RELOADING on
 * SIGHUP, STOPPING on shutdown. Signal handlers are installed before start-up, so a SIGTERM during
 * recovery still ends in a clean exit 0 (once start-up is done) and a SIGHUP waits for it.
 * A lost GPU (EngineFatalError) stops the daemon at once and exits 1, for systemd to restart it.
 * Resolves with the exit code.
 */
export async function runDaemon(configPath: string, opts: DaemonOptions = {}): Promise<number> {
  const daemon = new Daemon(configPath, { ...opts, onFatal: (e) => fatal(e) });
  const notify = (f: Record<string, string>) => {
    try {
      sdNotify(f);
    } catch (e) {
      log.debug(`sd_notify failed: ${(e as Error).message}`);
    }
  };
  let status: NodeJS.Timeout | null = null;
  let watchdog: NodeJS.Timeout | null = null;
  let stopping = false;
  let failed = false;
  let resolveExit!: (code: number) => void;
  const exited = new Promise<number>((r) => (resolveExit = r));
  // every start, reload and stop runs after the previous one: a signal never interrupts start-up
  let chain: Promise<void> = daemon.start();

  const shutdown = (budgetMs?: number) => {
    stopping = true;
    if (status) clearInterval(status);
    if (watchdog) clearInterval(watchdog);
    chain = chain
      .catch(() => undefined)
      .then(() => daemon.stop(budgetMs))
      .then(
        () => resolveExit(failed ? 1 : 0),
        (e) => {
          log.error(`shutdown failed: ${(e as Error).message}`);
          resolveExit(1);
        },
      );
  };
  const stop = (signal: string) => {
    if (stopping) {
      log.warn(`${signal} again during shutdown: exiting now`);
      process.exit(1);
    }
    log.info(`${signal}: stopping intake, finishing or abandoning the running merge`);
    notify({ STOPPING: '1', STATUS: 'stopping' });
    shutdown();
  };
  // The device is lost for the whole process: other merges would fail too, so they are abandoned
  // at once (their checkpoints stay queued) and the daemon exits 1 for systemd to restart it.
  function fatal(e: Error): void {
    log.error(`engine failure, exiting for a restart: ${e.message}`);
    if (failed) return;
    failed = true;
    notify({ STOPPING: '1', STATUS: `engine failure: ${e.message}` });
    // a stop that hangs on the lost device must not keep the process (and the GPU) forever
    setTimeout(() => process.exit(1), 30_000).unref();
    if (!stopping) shutdown(0);
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', reload);
  // signals that came while the modules were still loading (bin/cmerge.js kept them)
  for (const s of takeEarlySignals()) {
    if (s === 'SIGHUP') reload();
    else if (!stopping) stop(s);
  }
  function reload(): void {
    if (stopping) return;
    log.info('SIGHUP: reloading the configuration');
    notify({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) });
    chain = chain
      .then(() => daemon.reload())
      // what loadConfig and the base check could not foresee; never an unhandled rejection
      .catch((e) => void log.error(`reload failed: ${(e as Error).message}`))
      .finally(() => notify({ READY: '1', STATUS: daemon.statusLine() }));
  }

  try {
    await chain;
  } catch (e) {
    // start-up failed (bad base model, unreadable state...): nothing to stop
    log.error(`cmerge daemon failed to start: ${(e as Error).message}`);
    return 1;
  }
  if (!stopping) {
    notify({ READY: '1', STATUS: daemon.statusLine() });
    status = setInterval(() => notify({ STATUS: daemon.statusLine() }), 2000);
    const usec = Number(process.env.WATCHDOG_USEC ?? 0);
    if (usec > 0) watchdog = setInterval(() => notify({ WATCHDOG: '1' }), Math.max(500, usec / 2000));
  }
  return exited;
}

import { log } from '../util/log.js';
import { Daemon, type DaemonOptions } from './daemon.js';
import { sdNotify } from './systemd-notify.js';

/**
 * Runs the daemon until SIGTERM/SIGINT. systemd: READY once recovered and watching, STATUS every
 * few seconds, WATCHDOG at half the watchdog interval while the event loop turns, RELOADING on
 * SIGHUP, STOPPING on shutdown. Resolves with the exit code.
 */
export async function runDaemon(configPath: string, opts: DaemonOptions = {}): Promise<number> {
  const daemon = new Daemon(configPath, opts);
  await daemon.start();
  const notify = (f: Record<string, string>) => {
    try {
      sdNotify(f);
    } catch (e) {
      log.debug(`sd_notify failed: ${(e as Error).message}`);
    }
  };
  notify({ READY: '1', STATUS: daemon.statusLine() });
  const status = setInterval(() => notify({ STATUS: daemon.statusLine() }), 2000);
  const usec = Number(process.env.WATCHDOG_USEC ?? 0);
  const watchdog = usec > 0 ? setInterval(() => notify({ WATCHDOG: '1' }), Math.max(500, usec / 2000)) : null;
  let reloading: Promise<void> = Promise.resolve();

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        log.warn(`${signal} again during shutdown: exiting now`);
        process.exit(1);
      }
      stopping = true;
      log.info(`${signal}: stopping intake, finishing or abandoning the running merge`);
      notify({ STOPPING: '1', STATUS: 'stopping' });
      clearInterval(status);
      if (watchdog) clearInterval(watchdog);
      void reloading
        .then(() => daemon.stop())
        .then(
          () => resolve(0),
          (e) => {
            log.error(`shutdown failed: ${(e as Error).message}`);
            resolve(1);
          },
        );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      if (stopping) return;
      log.info('SIGHUP: reloading the configuration');
      notify({ RELOADING: '1', MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n) });
      reloading = reloading.then(() => daemon.reload()).finally(() => notify({ READY: '1', STATUS: daemon.statusLine() }));
    });
  });
}

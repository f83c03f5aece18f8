/**
 * Time in the daemon: retry delays for work that failed for reasons outside it, and the clock the
 * waits run on (the system's, or a test's that moves only when told).
 */
export interface BackoffOptions {
  /** wait before the first retry, ms (default 5 s); doubles with each further failure */
  initialMs: number;
  /** the longest wait, ms (default 10 min) */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { initialMs: 5_000, maxMs: 600_000 };

/** Wait before retry number `failures` (1, 2, ...): 5 s doubling, at most 10 min, unless `options` say otherwise. */
export function retryDelayMs(failures: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(options.maxMs, options.initialMs * 2 ** (failures - 1));
}

/** What waits and timestamps read: injectable, so that a test can move time instead of sleeping. */
export interface Clock {
  /** milliseconds since the epoch */
  now(): number;
  /**
   * Calls `fn` once, when now() has reached the time it was set plus `ms`; returns a function that
   * cancels it. A `weak` timer does not keep the process alive on its own (Node's unref).
   */
  setTimer(fn: () => void, ms: number, opts?: { weak?: boolean }): () => void;
}

/** the longest delay setTimeout takes (a longer one would fire after 1 ms) */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Date.now() and Node's timers: a timeout runs on the event loop's own time, which may reach its
 * end a millisecond before Date.now() does; then the timer is set again for the rest, so that `fn`
 * never runs before now() reaches its time (a waiter that checks now() would otherwise find
 * itself early, with no timer left to wake it).
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms, opts) {
    const due = Date.now() + ms;
    let timer: NodeJS.Timeout;
    const arm = (wait: number) => {
      timer = setTimeout(
        () => {
          const left = due - Date.now();
          if (left > 0) arm(left);
          else fn();
        },
        Math.min(wait, MAX_TIMEOUT_MS),
      );
      if (opts?.weak) timer.unref();
    };
    arm(ms);
    return () => clearTimeout(timer);
  },
};

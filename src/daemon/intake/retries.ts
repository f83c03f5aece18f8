import { retryDelayMs, type BackoffOptions } from '../backoff.js';

/**
 * Intakes that failed for reasons not the checkpoint's own (SQLite, the disk): each path waits
 * `retryDelayMs(failures)` before it is taken up again, and is forgotten once an intake of it
 * succeeds.
 */
interface Failure {
  count: number;
  /** clock time from which it may be tried again */
  until: number;
  /** handed back by due() since the last failure */
  resumed: boolean;
}

export class FailedIntakes {
  private readonly failures = new Map<string, Failure>();

  constructor(private readonly backoff: BackoffOptions) {}

  /** Records one more failure of `path`; returns the wait before the next try, ms. */
  record(path: string, now: number): number {
    const count = (this.failures.get(path)?.count ?? 0) + 1;
    const delay = retryDelayMs(count, this.backoff);
    this.failures.set(path, { count, until: now + delay, resumed: false });
    return delay;
  }

  /** whether `path` is still waiting for its retry */
  waiting(path: string, now: number): boolean {
    return (this.failures.get(path)?.until ?? 0) > now;
  }

  /** The paths whose wait ended since the last call (each handed back once per failure). */
  due(now: number): string[] {
    const paths: string[] = [];
    for (const [path, f] of this.failures)
      if (!f.resumed && f.until <= now) {
        f.resumed = true;
        paths.push(path);
      }
    return paths;
  }

  succeeded(path: string): void {
    this.failures.delete(path);
  }
}

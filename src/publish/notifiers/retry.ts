/** Defaults shared by the HTTP and command notifiers. */
export const DEFAULT_TIMEOUT_S = 30;
export const DEFAULT_RETRIES = 3;
export const DEFAULT_BACKOFF_S = 1;
const MAX_BACKOFF_MS = 60_000;

export function backoffMs(backoffS: number, retry: number): number {
  return Math.min(MAX_BACKOFF_MS, backoffS * 1000 * 2 ** (retry - 1));
}

/** Sleep that ends early (resolving false) when `signal` aborts: shutdown must not wait out a backoff. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Keep the last `max` characters of a growing text (stderr, response bodies). */
export class Tail {
  private text = '';
  constructor(private readonly max: number) {}
  push(chunk: string): void {
    this.text += chunk;
    if (this.text.length > 2 * this.max) this.text = this.text.slice(-this.max);
  }
  toString(): string {
    return this.text.length > this.max ? '…' + this.text.slice(-this.max) : this.text;
  }
}

/**
 * Runs async jobs at most `limit` at a time, in call order; a failed job does not block the ones
 * after it. With limit 1 jobs run one after the other.
 */
export class SerialQueue {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit = 1) {}

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

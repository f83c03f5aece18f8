/**
 * Device memory for the cuda engine's operations when two tensors are in flight
 * (docs/cuda-engine.md#memory). Each operation reserves its estimate before it touches the device
 * and releases it when it ends, so two operations only run side by side when both estimates fit
 * at once; otherwise the later one waits for the earlier to end. Alone, an operation that does
 * not fit is refused (the engine runs it on the CPU), exactly as without overlap.
 *
 * `available()` is min(max_memory, the device's free memory) read when asked. The free memory
 * already excludes what the operations in flight allocated so far, so requiring
 * bytes + reserved ≤ available counts their allocations twice: conservative, never an overlap
 * that a serial run would not have had room for.
 */
export class DeviceAdmission {
  private reserved = 0;
  private running = 0;
  /** whether an admit() is deciding (the head: one at a time, handed on in call order) */
  private head = false;
  /** admit() calls waiting to be the head, in call order */
  private readonly queue: (() => void)[] = [];
  /** the head, waiting for a running operation to end */
  private onRelease: (() => void) | null = null;

  constructor(private readonly available: () => number) {}

  /**
   * Resolves true once `bytes` are reserved (call release(bytes) when the operation ends), or
   * false when the operation does not fit even with nothing else running. In call order.
   */
  async admit(bytes: number): Promise<boolean> {
    if (this.head) await new Promise<void>((r) => this.queue.push(r));
    this.head = true;
    try {
      for (;;) {
        const room = this.available();
        if (this.running === 0) {
          if (bytes > room) return false;
          break;
        }
        if (bytes + this.reserved <= room) break;
        await new Promise<void>((r) => (this.onRelease = r));
      }
      this.reserved += bytes;
      this.running++;
      return true;
    } finally {
      this.onRelease = null;
      const next = this.queue.shift();
      if (next) next();
      else this.head = false;
    }
  }

  release(bytes: number): void {
    this.reserved -= bytes;
    this.running--;
    const wake = this.onRelease;
    this.onRelease = null;
    wake?.();
  }

  /** operations admitted and not yet released */
  get inFlight(): number {
    return this.running;
  }
}

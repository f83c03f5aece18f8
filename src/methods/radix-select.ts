/**
 * Exact k-th smallest |x| over a stream of float32 chunks, without holding the stream:
 * non-negative float32 values order like their bit patterns, so two histogram passes over the
 * high and low 16 bits find the exact value (docs/methods.md#ties).
 */
export class MagnitudeSelector {
  private readonly hist = new Float64Array(65536);
  private high = -1;
  /** rank within the chosen high bucket (1-based) */
  private rankInBucket = 0;
  private result: number | null = null;
  private count = 0;

  /** @param k 1-based rank of the wanted smallest magnitude */
  constructor(private readonly k: number) {}

  /** pass 0: histogram of the high 16 bits of |x| */
  addHigh(x: Float32Array): void {
    const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const h = this.hist;
    for (let i = 0; i < bits.length; i++) h[(bits[i] & 0x7fffffff) >>> 16]++;
    this.count += x.length;
  }

  endHigh(): void {
    if (this.k < 1 || this.k > this.count) throw new Error(`rank ${this.k} outside 1..${this.count}`);
    let c = 0;
    for (let b = 0; b < 65536; b++) {
      if (c + this.hist[b] >= this.k) {
        this.high = b;
        this.rankInBucket = this.k - c;
        break;
      }
      c += this.hist[b];
    }
    this.hist.fill(0);
  }

  /** pass 1: histogram of the low 16 bits of the values in the chosen high bucket */
  addLow(x: Float32Array): void {
    const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const h = this.hist;
    const hi = this.high;
    for (let i = 0; i < bits.length; i++) {
      const a = bits[i] & 0x7fffffff;
      if (a >>> 16 === hi) h[a & 0xffff]++;
    }
  }

  endLow(): number {
    let c = 0;
    for (let b = 0; b < 65536; b++) {
      c += this.hist[b];
      if (c >= this.rankInBucket) {
        const bits = new Uint32Array([((this.high << 16) | b) >>> 0]);
        this.result = new Float32Array(bits.buffer)[0];
        return this.result;
      }
    }
    throw new Error('radix selection lost its bucket');
  }

  get value(): number {
    if (this.result === null) throw new Error('selection not finished');
    return this.result;
  }
}

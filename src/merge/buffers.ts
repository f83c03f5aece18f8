/**
 * Reusable float32 buffers, each as large as the largest merged tensor, lent to one tensor at a
 * time (the update pass's in-flight linear tensors, the lean path, the output pass). Fresh
 * tensor-sized arrays per tensor cost page faults on every use and leave garbage that V8 collects
 * late (the SVD runs on the libuv pool without JS allocation), which on a 1B model put several
 * 262 MB copies of dead tensors into the peak RSS.
 */
export class BufferPool {
  private readonly free: Float32Array[] = [];

  constructor(private readonly capacity: number) {}

  /** a view of `size` elements on a free buffer (a new one when none is free); give it back with release */
  acquire(size: number): Float32Array {
    if (size > this.capacity)
      throw new RangeError(`buffer of ${size} elements requested from a pool of ${this.capacity}`);
    return (this.free.pop() ?? new Float32Array(this.capacity)).subarray(0, size);
  }

  release(view: Float32Array): void {
    this.free.push(new Float32Array(view.buffer, 0, this.capacity));
  }
}

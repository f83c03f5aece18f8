import type { Engine } from '../engine/types.js';
import type { ModelReader } from '../io/types.js';
import type { MethodStep, StepUpdate, TaskSource, TensorJob } from '../methods/types.js';
import type { BufferPool } from './buffers.js';
import type { CountSketch } from './sketch.js';
import { assertFinite } from './validate.js';

/** element-wise tensors waiting behind linear ones, at most (they are small; this bounds memory) */
const MAX_IN_FLIGHT = 16;

/** A tensor's base, previous state (null at t = 1) and checkpoint values, decoded; the checkpoint checked finite. */
export function readTensors(
  base: ModelReader,
  prev: ModelReader | null,
  ckpt: ModelReader,
  name: string,
): { base: Float32Array; prev: Float32Array | null; ckpt: Float32Array } {
  const ckptValues = ckpt.readF32(name);
  assertFinite(ckpt.path, name, ckptValues);
  return { base: base.readF32(name), prev: prev ? prev.readF32(name) : null, ckpt: ckptValues };
}

/** Squared norms of one tensor's task vector and base, summed in float64. */
export interface TauSums {
  tauSq: number;
  baseSq: number;
}

/**
 * The merge's one ‖τ‖² formula: τ = ckpt − base as the float32 tensor it is stored as, squared and
 * summed in float64 in element order (chunks of a tensor continue one running sum); ‖θ0‖² beside.
 * Stores τ into `out` when given (it may alias `ckpt`).
 */
export function addTauChunk(ckpt: Float32Array, base: Float32Array, out: Float32Array | null, sums: TauSums): void {
  // sums in locals: a field updated in a hot loop costs a store per element
  let tauSq = sums.tauSq;
  let baseSq = 0;
  for (let i = 0; i < base.length; i++) {
    const x = base[i];
    const tau = Math.fround(ckpt[i] - x);
    if (out !== null) out[i] = tau;
    tauSq += tau * tau;
    baseSq += x * x;
  }
  sums.tauSq = tauSq;
  sums.baseSq += baseSq;
}

export interface UpdatePassInput {
  step: MethodStep;
  method: string;
  engine: Engine;
  base: ModelReader;
  prev: ModelReader | null;
  ckpt: ModelReader;
  /** in the order results are recorded (the state file's order) */
  jobs: readonly TensorJob[];
  pool: BufferPool;
  sketch: CountSketch | null;
  /** each tensor's new state, in job order; `update.state` may be a pooled buffer, valid during the call */
  record(job: TensorJob, update: StepUpdate, tauSq: number): void;
}

/**
 * One tensor's TaskSource: prev and τ decoded into `buffer`, the base and (for addPrev) the
 * previous state streamed in chunks; or, through tensors(), the checkpoint into `buffer` and the
 * base and previous state whole. ‖τ‖² and ‖θ0‖² land in `sums` when the checkpoint is read.
 */
class TensorInputs implements TaskSource {
  readonly sums: TauSums = { tauSq: 0, baseSq: 0 };
  ckptRead = false;

  constructor(
    private readonly pass: UpdatePassInput,
    private readonly name: string,
    private readonly buffer: Float32Array,
  ) {}

  prev(): Float32Array | null {
    return this.pass.prev ? this.pass.prev.readF32Into(this.name, this.buffer) : null;
  }

  tau(): { tau: Float32Array; sq: number } {
    const tau = this.readCkpt();
    this.pass.base.readF32Chunks(this.name, (off, chunk) => {
      const view = tau.subarray(off, off + chunk.length);
      addTauChunk(view, chunk, view, this.sums);
    });
    this.pass.sketch?.addDiff(this.name, tau);
    return { tau, sq: this.sums.tauSq };
  }

  addPrev(out: Float32Array): Float32Array {
    const { prev, method } = this.pass;
    if (!prev) throw new Error(`${method}: no previous state at step 1`);
    prev.readF32Chunks(this.name, (off, chunk) => {
      const dst = out.subarray(off, off + chunk.length);
      for (let i = 0; i < chunk.length; i++) dst[i] += chunk[i];
    });
    return out;
  }

  tensors(): { base: Float32Array; prev: Float32Array | null; ckpt: Float32Array } {
    const ckpt = this.readCkpt();
    const base = this.pass.base.readF32(this.name);
    // before the method may overwrite the checkpoint
    addTauChunk(ckpt, base, null, this.sums);
    this.pass.sketch?.addDiff(this.name, ckpt, base);
    return { base, prev: this.pass.prev ? this.pass.prev.readF32(this.name) : null, ckpt };
  }

  private readCkpt(): Float32Array {
    const { ckpt, method } = this.pass;
    if (this.ckptRead) throw new Error(`${method}: checkpoint tensor ${this.name} read twice`);
    this.ckptRead = true;
    const values = ckpt.readF32Into(this.name, this.buffer);
    assertFinite(ckpt.path, this.name, values);
    return values;
  }
}

/** A tensor's update under way. */
interface InFlight {
  job: TensorJob;
  linear: boolean;
  /** the pooled buffer to give back once recorded (null: a fresh one, left to the GC) */
  pooled: Float32Array | null;
  done: Promise<{ update: StepUpdate; sums: TauSums }>;
}

/**
 * Starts the method's update of one tensor on `buffer`. Starting it from its own frame keeps the
 * decoded tensors referenced only by the method while it awaits (it may drop them early).
 */
function startUpdate(pass: UpdatePassInput, job: TensorJob, buffer: Float32Array): InFlight['done'] {
  const inputs = new TensorInputs(pass, job.name, buffer);
  return pass.step.updateTask(job, inputs).then((update) => {
    if (!inputs.ckptRead) throw new Error(`${pass.method}: updateTask did not read the checkpoint for ${job.name}`);
    return { update, sums: inputs.sums };
  });
}

/**
 * The update pass of one step: every tensor through the method's updateTask, results recorded
 * strictly in job order. Returns ‖θ0‖² over the merged tensors.
 *
 * Tensors the engine runs side by side (`engine.concurrencyFor`: every ViT-B/32 tensor; each in
 * flight holds ~6 tensor-sized buffers) are kept in flight so that that many linear ones (the SVDs
 * and products) overlap; element-wise tensors between them (biases, norms) do not count, since
 * file order interleaves them. Tensors whose jobs run alone go one at a time, which is also what
 * keeps a 1.1B model under 1 GB. Linear tensors in flight and tensors that run alone get a pooled
 * buffer (see BufferPool); the small element-wise ones in flight a fresh one.
 */
export async function runUpdatePass(pass: UpdatePassInput): Promise<number> {
  const inflight: InFlight[] = [];
  let linearInFlight = 0;
  let baseSq = 0;
  const finishOldest = async () => {
    const oldest = inflight.shift()!;
    if (oldest.linear) linearInFlight--;
    const { update, sums } = await oldest.done;
    baseSq += sums.baseSq;
    pass.record(oldest.job, update, sums.tauSq);
    if (oldest.pooled) pass.pool.release(oldest.pooled);
  };
  for (const job of pass.jobs) {
    const lanes = pass.engine.concurrencyFor(job.size);
    const linear = job.kind === 'linear';
    if (lanes > 1) {
      while (inflight.length >= MAX_IN_FLIGHT || (linear && linearInFlight >= lanes)) await finishOldest();
      if (linear) linearInFlight++;
    } else {
      while (inflight.length) await finishOldest();
    }
    const pooled = lanes === 1 || linear ? pass.pool.acquire(job.size) : null;
    const done = startUpdate(pass, job, pooled ?? new Float32Array(job.size));
    done.catch(() => undefined); // surfaced by finishOldest; never an unhandled rejection
    inflight.push({ job, linear, pooled, done });
    if (lanes === 1) await finishOldest();
  }
  while (inflight.length) await finishOldest();
  return baseSq;
}

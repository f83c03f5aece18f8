import type { Engine } from '../engine/types.js';
import type { ModelReader } from '../io/types.js';
import type { MethodStep, StepUpdate, TaskSource, TensorJob } from '../methods/types.js';
import type { BufferPool } from './buffers.js';
import type { CheckpointTensor, MergeCheckpoint } from './checkpoint.js';
import type { CountSketch } from './sketch.js';
import { assertFinite } from './validate.js';

/** element-wise tensors waiting behind linear ones, at most (they are small; this bounds memory) */
const MAX_IN_FLIGHT = 16;

/**
 * A tensor's base, previous state (null at t = 1) and checkpoint values, decoded; the checkpoint
 * checked finite. For an adapter the checkpoint is θ0 + τ, tensor-sized (θ_t is never whole).
 */
export async function readTensors(
  base: ModelReader,
  prev: ModelReader | null,
  ckpt: MergeCheckpoint,
  name: string,
): Promise<{ base: Float32Array; prev: Float32Array | null; ckpt: Float32Array }> {
  const tensor = await ckpt.prepare(name);
  const baseValues = base.readF32(name);
  let ckptValues: Float32Array;
  if (tensor.kind === 'stored') {
    ckptValues = tensor.model.readF32(name);
    assertFinite(ckpt.path, name, ckptValues);
  } else {
    ckptValues = thetaOf(baseValues, tensor.tau, new Float32Array(baseValues.length));
  }
  return { base: baseValues, prev: prev ? prev.readF32(name) : null, ckpt: ckptValues };
}

/** θ_t = θ0 + τ into `out` (float32; τ null: θ0). */
function thetaOf(base: Float32Array, tau: Float32Array | null, out: Float32Array): Float32Array {
  if (tau === null) out.set(base);
  else for (let i = 0; i < base.length; i++) out[i] = base[i] + tau[i];
  return out;
}

/** Squared norms of one tensor's task vector and base, summed in float64. */
export interface TauSums {
  tauSq: number;
  baseSq: number;
}

/**
 * The merge's one ‖τ‖² formula: τ as the float32 tensor it is (for a full checkpoint τ = ckpt − base
 * rounded to float32; see addGivenTauChunk for an adapter's, formed directly), squared and summed in
 * float64 in element order (chunks of a tensor continue one running sum); ‖θ0‖² beside. Stores τ
 * into `out` when given (it may alias `ckpt`).
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

/**
 * addTauChunk's formula for a τ that is given, not a difference (an adapter's, formed in float32;
 * null: τ = 0 over this chunk): Σ τ² in float64 in element order, and ‖θ0‖² beside.
 */
export function addGivenTauChunk(tau: Float32Array | null, base: Float32Array, sums: TauSums): void {
  let tauSq = sums.tauSq;
  let baseSq = 0;
  for (let i = 0; i < base.length; i++) {
    const x = base[i];
    baseSq += x * x;
  }
  if (tau !== null) {
    for (let i = 0; i < tau.length; i++) tauSq += tau[i] * tau[i];
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
  ckpt: MergeCheckpoint;
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
 * `tensor` is the checkpoint's side, prepared before the method runs: a full checkpoint's tensor
 * is read here; an adapter's τ is given (null: 0) and θ_t = θ0 + τ formed only for tensors().
 */
class TensorInputs implements TaskSource {
  readonly sums: TauSums = { tauSq: 0, baseSq: 0 };
  ckptRead = false;
  /** the full checkpoint, once given() found the tensor stored */
  private stored: ModelReader | null = null;

  constructor(
    private readonly pass: UpdatePassInput,
    private readonly name: string,
    private readonly buffer: Float32Array,
    private tensor: CheckpointTensor | null,
  ) {}

  prev(): Float32Array | null {
    return this.pass.prev ? this.pass.prev.readF32Into(this.name, this.buffer) : null;
  }

  tau(): { tau: Float32Array; sq: number } {
    const given = this.given();
    if (given === undefined) {
      const tau = this.readStored();
      this.pass.base.readF32Chunks(this.name, (off, chunk) => {
        const view = tau.subarray(off, off + chunk.length);
        addTauChunk(view, chunk, view, this.sums);
      });
      this.pass.sketch?.addDiff(this.name, tau);
      return { tau, sq: this.sums.tauSq };
    }
    const tau = this.buffer;
    if (given === null) tau.fill(0);
    else tau.set(given);
    this.pass.base.readF32Chunks(this.name, (off, chunk) =>
      addGivenTauChunk(given && given.subarray(off, off + chunk.length), chunk, this.sums),
    );
    if (given !== null) this.pass.sketch?.addDiff(this.name, tau);
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
    const given = this.given();
    const base = this.pass.base.readF32(this.name);
    let ckpt: Float32Array;
    if (given === undefined) {
      ckpt = this.readStored();
      // before the method may overwrite the checkpoint
      addTauChunk(ckpt, base, null, this.sums);
      this.pass.sketch?.addDiff(this.name, ckpt, base);
    } else {
      addGivenTauChunk(given, base, this.sums);
      if (given !== null) this.pass.sketch?.addDiff(this.name, given);
      ckpt = thetaOf(base, given, this.buffer);
    }
    return { base, prev: this.pass.prev ? this.pass.prev.readF32(this.name) : null, ckpt };
  }

  /** An adapter's τ (null: 0), or undefined for a full checkpoint; marks the checkpoint read. */
  private given(): Float32Array | null | undefined {
    const { method } = this.pass;
    if (this.ckptRead) throw new Error(`${method}: checkpoint tensor ${this.name} read twice`);
    this.ckptRead = true;
    const tensor = this.tensor!;
    this.tensor = null; // the method may drop τ once it is copied
    if (tensor.kind === 'tau') return tensor.tau;
    this.stored = tensor.model;
    return undefined;
  }

  private readStored(): Float32Array {
    const values = this.stored!.readF32Into(this.name, this.buffer);
    assertFinite(this.pass.ckpt.path, this.name, values);
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
  // the checkpoint's side first (an adapter's τ takes the engine's matmul): the method stays synchronous about it
  return pass.ckpt.prepare(job.name).then((tensor) => {
    const inputs = new TensorInputs(pass, job.name, buffer, tensor);
    return pass.step.updateTask(job, inputs).then((update) => {
      if (!inputs.ckptRead) throw new Error(`${pass.method}: updateTask did not read the checkpoint for ${job.name}`);
      return { update, sums: inputs.sums };
    });
  });
}

/**
 * The update pass of one step: every tensor through the method's updateTask, results recorded
 * strictly in job order. Returns ‖θ0‖² over the merged tensors.
 *
 * Tensors the engine runs side by side (`engine.concurrencyFor` with the method's engineWork for
 * linear ones: every ViT-B/32 tensor, and for OPCM a TinyLlama's; each in flight holds up to ~6
 * tensor-sized buffers) are kept in flight so that that many linear ones (the SVDs and products)
 * overlap; element-wise tensors between them (biases, norms) do not count, since file order
 * interleaves them. Tensors whose jobs run alone go one at a time, which is also what keeps a 1.1B
 * model under 1 GB and a 7B one under 2 GB. Linear tensors in flight and tensors that run alone
 * get a pooled buffer (see BufferPool); the small element-wise ones in flight a fresh one.
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
  try {
    for (const job of pass.jobs) {
      const linear = job.kind === 'linear';
      const lanes = pass.engine.concurrencyFor(job.size, linear ? pass.step.engineWork : 'other');
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
  } catch (e) {
    // the tensors still in flight settle first: the caller closes the engine next (a GPU
    // engine's device memory with it), which must not happen under a running job
    await Promise.allSettled(inflight.map((f) => f.done));
    throw e;
  }
  return baseSq;
}

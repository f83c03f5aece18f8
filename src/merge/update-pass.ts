import type { Engine } from '../engine/types.js';
import type { ModelReader } from '../io/types.js';
import type { MethodStep, TaskSource, TensorJob } from '../methods/types.js';
import type { BufferPool } from './buffers.js';
import type { CountSketch } from './sketch.js';
import { assertFinite } from './validate.js';

/** element-wise tensors waiting behind linear ones, at most (they are small; this bounds memory) */
const MAX_IN_FLIGHT = 16;

export type Update = Awaited<ReturnType<MethodStep['update']>>;

/** A tensor's base, previous state (null at t = 1) and checkpoint values, decoded; the checkpoint checked finite. */
export function readTensors(
  base: ModelReader,
  prev: ModelReader | null,
  ckpt: ModelReader,
  name: string,
): { b: Float32Array; p: Float32Array | null; c: Float32Array } {
  const c = ckpt.readF32(name);
  assertFinite(ckpt.path, name, c);
  return { b: base.readF32(name), p: prev ? prev.readF32(name) : null, c };
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
  /** each tensor's new state, in job order; `r.state` may be a pooled buffer, valid during the call */
  record(job: TensorJob, r: Update, tauSq: number): void;
}

/**
 * The update pass of one step: every tensor through the method, results recorded strictly in job
 * order. Returns ‖θ0‖² over the merged tensors.
 *
 * Tensors the engine runs side by side (`engine.concurrencyFor`: every ViT-B/32 tensor; each in
 * flight holds ~6 tensor-sized buffers) are kept in flight so that that many linear ones (the SVDs
 * and products) overlap; element-wise tensors between them (biases, norms) do not count, since
 * file order interleaves them. Tensors whose jobs run alone go one at a time, which is also what
 * keeps a 1.1B model under 1 GB.
 * Methods with `updateTask` (OPCM) get a pooled buffer per linear tensor and read prev, τ and the
 * base through a TaskSource on it; the others get freshly decoded tensors.
 */
export async function runUpdatePass(u: UpdatePassInput): Promise<number> {
  const { step, base, prev, ckpt, sketch } = u;
  let baseSq = 0;

  // Loads and starts update from its own frame, so the buffers are referenced only by the method
  // while it awaits (the method may drop the base early). ‖τ‖² is taken before the method may
  // overwrite the checkpoint buffer.
  const startUpdate = (job: TensorJob) => {
    const { b, p, c } = readTensors(base, prev, ckpt, job.name);
    // sums in locals: a captured `let` updated in a hot loop is a boxed double (an allocation per store)
    let tq = 0;
    let bq = 0;
    for (let i = 0; i < c.length; i++) {
      const d = c[i] - b[i];
      tq += d * d;
      bq += b[i] * b[i];
    }
    baseSq += bq;
    sketch?.addDiff(job.name, c, b);
    return step.update(job, b, p, c).then((r) => ({ r, tq }));
  };

  // prev and τ in one buffer; the base and (for addPrev) prev stream in chunks
  const startTask = (job: TensorJob, buf: Float32Array) => {
    const name = job.name;
    let tq = 0;
    let loaded = false;
    const src: TaskSource = {
      prev: () => (prev ? prev.readF32Into(name, buf) : null),
      tau: () => {
        if (loaded) throw new Error(`${u.method}: τ of ${name} loaded twice`);
        loaded = true;
        const tau = ckpt.readF32Into(name, buf);
        assertFinite(ckpt.path, name, tau);
        base.readF32Chunks(name, (off, chunk) => {
          const dst = tau.subarray(off, off + chunk.length);
          let t = tq; // one running sum in element order, as a single pass over τ would take
          let bq = 0;
          for (let i = 0; i < chunk.length; i++) {
            const x = chunk[i];
            const d = Math.fround(dst[i] - x); // the stored τ, so ‖τ‖² is that of the float32 tensor
            t += d * d;
            bq += x * x;
            dst[i] = d;
          }
          tq = t;
          baseSq += bq;
        });
        sketch?.addDiff(name, tau);
        return { tau, sq: tq };
      },
      addPrev: (out) => {
        if (!prev) throw new Error(`${u.method}: no previous state at step 1`);
        prev.readF32Chunks(name, (off, chunk) => {
          const dst = out.subarray(off, off + chunk.length);
          for (let i = 0; i < chunk.length; i++) dst[i] += chunk[i];
        });
        return out;
      },
    };
    return step.updateTask!(job, src).then((r) => {
      if (!loaded) throw new Error(`${u.method}: updateTask did not read the checkpoint for ${name}`);
      return { r, tq };
    });
  };

  const inflight: {
    job: TensorJob;
    linear: boolean;
    buf: Float32Array | null;
    done: Promise<{ r: Update; tq: number }>;
  }[] = [];
  let linearInFlight = 0;
  const finishOne = async () => {
    const f = inflight.shift()!;
    if (f.linear) linearInFlight--;
    const { r, tq } = await f.done;
    u.record(f.job, r, tq);
    if (f.buf) u.pool.release(f.buf);
  };
  const lean = step.updateTask !== undefined;
  for (const job of u.jobs) {
    const lanes = u.engine.concurrencyFor(job.size);
    if (lanes > 1) {
      const linear = job.kind === 'linear';
      while (inflight.length >= MAX_IN_FLIGHT || (linear && linearInFlight >= lanes)) await finishOne();
      // pooled buffers for the linear tensors (at most `concurrency` at once), fresh small ones otherwise
      const buf = lean && linear ? u.pool.acquire(job.size) : null;
      const done = lean ? startTask(job, buf ?? new Float32Array(job.size)) : startUpdate(job);
      done.catch(() => undefined); // surfaced by finishOne; never an unhandled rejection
      inflight.push({ job, linear, buf, done });
      if (linear) linearInFlight++;
      continue;
    }
    while (inflight.length) await finishOne();
    if (lean) {
      const buf = u.pool.acquire(job.size);
      const { r, tq } = await startTask(job, buf);
      u.record(job, r, tq);
      u.pool.release(buf);
    } else {
      const { r, tq } = await startUpdate(job);
      u.record(job, r, tq);
    }
  }
  while (inflight.length) await finishOne();
  return baseSq;
}

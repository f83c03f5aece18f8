import { permutation } from '../random.js';
import { PIXELS } from './data.js';
import { fromTf, headBias, headWeight, logits, toTf, type Weights } from './model.js';
import type { DigitTask } from './tasks.js';
import { tf } from './tf.js';

export interface FitOptions {
  readonly epochs: number;
  readonly lr: number;
  readonly batch: number;
  readonly seed: number;
}

interface Examples {
  readonly images: Float32Array;
  readonly labels: Int32Array;
}

/**
 * Adam on softmax cross-entropy over shuffled mini-batches. Only `trainable` names get gradients;
 * the others are constants of the forward pass (a frozen head, or a frozen backbone for probing).
 * Batches are gathered on the host, outside the gradient tape: slicing a large tensor inside it
 * makes the tape pad a full-size gradient per step.
 */
function fit(
  start: Weights,
  trainable: ReadonlySet<string>,
  forward: (vars: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor2D) => tf.Tensor2D,
  data: Examples,
  classes: number,
  opts: FitOptions,
): Weights {
  const vars = new Map<string, tf.Tensor>();
  for (const [name, t] of toTf(start)) vars.set(name, trainable.has(name) ? tf.variable(t, true, name) : t);
  const optimizer = tf.train.adam(opts.lr);
  const n = data.labels.length;
  const xb = new Float32Array(opts.batch * PIXELS);
  const yb = new Int32Array(opts.batch);
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const order = permutation(n, opts.seed * 1000 + epoch);
    for (let from = 0; from + opts.batch <= n; from += opts.batch) {
      for (let k = 0; k < opts.batch; k++) {
        const s = order[from + k]!;
        xb.set(data.images.subarray(s * PIXELS, (s + 1) * PIXELS), k * PIXELS);
        yb[k] = data.labels[s]!;
      }
      const x = tf.tensor2d(xb, [opts.batch, PIXELS]);
      const y = tf.tidy(() => tf.oneHot(tf.tensor1d(yb, 'int32'), classes));
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, forward(vars, x)) as tf.Scalar);
      tf.dispose([x, y]);
    }
  }
  const out = fromTf(vars);
  optimizer.dispose();
  tf.dispose([...vars.values()]);
  return out;
}

const backboneNames = (w: Weights) => [...w.keys()].filter((n) => n.startsWith('backbone.'));

/** Trains backbone and head together (the broad pretraining of the base); returns both. */
export function pretrain(start: Weights, head: string, classes: number, data: Examples, opts: FitOptions): Weights {
  return fit(start, new Set(start.keys()), (v, x) => logits(v, head, x), data, classes, opts);
}

/** Fine-tunes the backbone under the task's frozen head; returns the new backbone. */
export function finetune(backbone: Weights, head: Weights, task: DigitTask, data: Examples, opts: FitOptions): Weights {
  const trained = fit(
    new Map([...backbone, ...head]),
    new Set(backboneNames(backbone)),
    (v, x) => logits(v, task.name, x),
    data,
    task.classes,
    opts,
  );
  return new Map(backboneNames(backbone).map((n) => [n, trained.get(n)!]));
}

/** Share of correct predictions of the task's head over the backbone. */
export function accuracy(w: Weights, task: DigitTask, data: Examples, batch = 1000): number {
  const vars = toTf(w, [...backboneNames(w), headWeight(task.name), headBias(task.name)]);
  let correct = 0;
  const n = data.labels.length;
  for (let from = 0; from < n; from += batch) {
    const size = Math.min(batch, n - from);
    const predicted = tf.tidy(() => {
      const x = tf.tensor2d(data.images.subarray(from * PIXELS, (from + size) * PIXELS), [size, PIXELS]);
      return tf.argMax(logits(vars, task.name, x), 1).dataSync();
    });
    for (let k = 0; k < size; k++) if (predicted[k] === data.labels[from + k]) correct++;
  }
  tf.dispose([...vars.values()]);
  return correct / n;
}

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createModelWriter, openModel } from '../../io/model.js';
import { PIXELS } from './data.js';
import type { DigitTask } from './tasks.js';
import { tf } from './tf.js';

/**
 * The digits model: an MLP backbone (`backbone.<i>.weight` [out, in] as PyTorch stores nn.Linear,
 * `backbone.<i>.bias`) shared by all tasks, and one linear head per task (`heads.<task>.weight`,
 * `heads.<task>.bias`). The heads are trained once on the base's features and then frozen, as
 * CLIP's zero-shot heads are; the merge excludes them (`tensors.exclude: ["heads.*"]`).
 */
export interface Tensor {
  readonly shape: number[];
  readonly data: Float32Array;
}

export type Weights = Map<string, Tensor>;

export const weightName = (layer: number) => `backbone.${layer}.weight`;
export const biasName = (layer: number) => `backbone.${layer}.bias`;
export const headWeight = (task: string) => `heads.${task}.weight`;
export const headBias = (task: string) => `heads.${task}.bias`;
export const HEAD_PATTERN = 'heads.*';

/** Widths of the backbone's layers; the last is the feature width the heads read. */
export function layerWidths(w: Weights): number[] {
  const widths: number[] = [];
  for (let i = 0; w.has(weightName(i)); i++) widths.push(w.get(weightName(i))!.shape[0]!);
  return widths;
}

/** He-normal backbone for input → widths, seeded. */
export function initBackbone(widths: readonly number[], seed: number): Weights {
  const w: Weights = new Map();
  let fanIn = PIXELS;
  widths.forEach((out, i) => {
    const values = tf.tidy(() =>
      tf.randomNormal([out, fanIn], 0, Math.sqrt(2 / fanIn), 'float32', seed + i).dataSync(),
    );
    w.set(weightName(i), { shape: [out, fanIn], data: Float32Array.from(values) });
    w.set(biasName(i), { shape: [out], data: new Float32Array(out) });
    fanIn = out;
  });
  return w;
}

export function initHead(name: string, classes: number, width: number): Weights {
  return new Map([
    [headWeight(name), { shape: [classes, width], data: new Float32Array(classes * width) }],
    [headBias(name), { shape: [classes], data: new Float32Array(classes) }],
  ]);
}

/**
 * A task's head made from the pretrained digit head without seeing the task's data, the way
 * CLIP's zero-shot head comes from class names: class c's row is the mean of the rows of the
 * digits the task labels c (for a task labelled by digit, the pretrained head itself).
 */
export function zeroShotHead(pretrained: Weights, pretrainedName: string, task: DigitTask): Weights {
  const w = pretrained.get(headWeight(pretrainedName))!;
  const b = pretrained.get(headBias(pretrainedName))!;
  const width = w.shape[1]!;
  const head = initHead(task.name, task.classes, width);
  const hw = head.get(headWeight(task.name))!.data;
  const hb = head.get(headBias(task.name))!.data;
  const members = new Array<number>(task.classes).fill(0);
  for (let d = 0; d < 10; d++) {
    const c = task.label(d);
    members[c]!++;
    for (let j = 0; j < width; j++) hw[c * width + j]! += w.data[d * width + j]!;
    hb[c]! += b.data[d]!;
  }
  for (let c = 0; c < task.classes; c++) {
    for (let j = 0; j < width; j++) hw[c * width + j]! /= members[c]!;
    hb[c]! /= members[c]!;
  }
  return head;
}

/** Backbone features of a batch: relu(x Wᵢᵀ + bᵢ) layer by layer. */
export function features(vars: ReadonlyMap<string, tf.Tensor>, x: tf.Tensor2D): tf.Tensor2D {
  let h = x;
  for (let i = 0; vars.has(weightName(i)); i++)
    h = tf.relu(
      tf.add(tf.matMul(h, vars.get(weightName(i)) as tf.Tensor2D, false, true), vars.get(biasName(i))!),
    ) as tf.Tensor2D;
  return h;
}

export function logits(vars: ReadonlyMap<string, tf.Tensor>, task: string, x: tf.Tensor2D): tf.Tensor2D {
  const h = features(vars, x);
  return tf.add(tf.matMul(h, vars.get(headWeight(task)) as tf.Tensor2D, false, true), vars.get(headBias(task))!);
}

export function toTf(w: Weights, names: Iterable<string> = w.keys()): Map<string, tf.Tensor> {
  return new Map([...names].map((n) => [n, tf.tensor(w.get(n)!.data, w.get(n)!.shape)]));
}

export function fromTf(vars: ReadonlyMap<string, tf.Tensor>): Weights {
  return new Map([...vars].map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.dataSync()) }]));
}

/** Writes the weights as one safetensors file (names in HF order, F32). */
export function saveWeights(path: string, w: Weights, metadata: Record<string, string> = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const specs = [...w].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape }));
  const writer = createModelWriter(path, specs, { metadata: { format: 'pt', ...metadata } });
  for (const name of writer.order) writer.write(name, w.get(name)!.data);
  writer.commit();
}

/** Reads a model file, or a version folder (model.safetensors or a sharded index). */
export function loadWeights(path: string): Weights {
  const model = openModel(path);
  try {
    return new Map(
      [...model.tensors.values()].map((info) => [info.name, { shape: info.shape, data: model.readF32(info.name) }]),
    );
  } finally {
    model.close();
  }
}

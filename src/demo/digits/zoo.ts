import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDigits, take } from './data.js';
import { evaluateWeights } from './evaluate.js';
import { initBackbone, initHead, saveWeights, zeroShotHead, type Weights } from './model.js';
import { digitTask, jittered, taskView } from './tasks.js';
import { readyTf } from './tf.js';
import { finetune, pretrain, type FitOptions } from './train.js';

const PRETRAIN = 'pretrain';

/** How the base and the fine-tuned models are made; the same options give the same files. */
export interface ZooOptions {
  readonly tasks: readonly string[];
  /** backbone widths, input 784 first implied */
  readonly widths: readonly number[];
  /** training samples per task (the train split has about 8,000) */
  readonly samples: number;
  readonly pretrain: FitOptions;
  /** randomly rotated and shifted copies of each digit added to the pretraining set */
  readonly jitterCopies: number;
  readonly finetune: FitOptions;
}

export interface Zoo {
  readonly base: string;
  /** fine-tuned checkpoints in `tasks` order, each named `<task>.safetensors` */
  readonly checkpoints: readonly { task: string; path: string }[];
  /** test accuracy of the base (lower bound) and of each fine-tuned model on its own task (upper bound) */
  readonly baseAccuracy: Record<string, number>;
  readonly finetunedAccuracy: Record<string, number>;
  readonly seconds: number;
}

/**
 * The base (a backbone pretrained on upright digits, plus every task's zero-shot head made from the
 * pretrained digit head) and one fully fine-tuned checkpoint per task (the backbone trained under the task's
 * frozen head; the heads stay the base's). Written to `dir`, reused when zoo.json matches.
 */
export async function buildZoo(
  dir: string,
  opts: ZooOptions,
  progress: (line: string) => void = () => {},
): Promise<Zoo> {
  const record = join(dir, 'zoo.json');
  if (existsSync(record)) {
    const old = JSON.parse(readFileSync(record, 'utf8')) as { options: ZooOptions; zoo: Zoo };
    if (JSON.stringify(old.options) === JSON.stringify(opts) && existsSync(old.zoo.base)) return old.zoo;
  }
  await readyTf();
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const { train } = loadDigits();
  const start = new Map([
    ...initBackbone(opts.widths, opts.pretrain.seed),
    ...initHead(PRETRAIN, 10, opts.widths.at(-1)!),
  ]);
  const pretrained = pretrain(
    start,
    PRETRAIN,
    10,
    jittered(train, opts.jitterCopies, opts.pretrain.seed),
    opts.pretrain,
  );
  progress(
    `pretrained the backbone (${opts.widths.join('-')}) on ${train.count} digits and ${opts.jitterCopies} jittered copies of each`,
  );
  const data = take(train, opts.samples);
  const backbone = new Map([...pretrained].filter(([n]) => n.startsWith('backbone.')));
  const heads: Weights = new Map();
  for (const name of opts.tasks)
    for (const [k, v] of zeroShotHead(pretrained, PRETRAIN, digitTask(name))) heads.set(k, v);
  const baseWeights = new Map([...backbone, ...heads]);
  const base = join(dir, 'base.safetensors');
  saveWeights(base, baseWeights);
  const baseAccuracy = await evaluateWeights(baseWeights, opts.tasks);
  const checkpoints: { task: string; path: string }[] = [];
  const finetunedAccuracy: Record<string, number> = {};
  for (const name of opts.tasks) {
    const t = digitTask(name);
    const tuned = new Map([...finetune(backbone, heads, t, taskView(t, data), opts.finetune), ...heads]);
    const path = join(dir, `${name}.safetensors`);
    saveWeights(path, tuned);
    finetunedAccuracy[name] = (await evaluateWeights(tuned, [name]))[name]!;
    checkpoints.push({ task: name, path });
    progress(`fine-tuned ${name}: ${pct(baseAccuracy[name]!)} → ${pct(finetunedAccuracy[name]!)}`);
  }
  const zoo: Zoo = { base, checkpoints, baseAccuracy, finetunedAccuracy, seconds: (Date.now() - started) / 1000 };
  writeFileSync(record, JSON.stringify({ options: opts, zoo }, null, 2) + '\n');
  return zoo;
}

export const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

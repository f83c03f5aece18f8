import { loadDigits } from './data.js';
import { headWeight, loadWeights, type Weights } from './model.js';
import { DIGIT_TASKS, taskView } from './tasks.js';
import { accuracy } from './train.js';
import { readyTf } from './tf.js';

/** Tasks whose head the model carries, in DIGIT_TASKS order. */
export function tasksWithHeads(w: Weights): string[] {
  return DIGIT_TASKS.filter((t) => w.has(headWeight(t.name))).map((t) => t.name);
}

/** Test-split accuracy of every task the model has a head for: {"task": accuracy}. */
export async function evaluateWeights(
  w: Weights,
  tasks: readonly string[] = tasksWithHeads(w),
): Promise<Record<string, number>> {
  await readyTf();
  const { test } = loadDigits();
  const scores: Record<string, number> = {};
  for (const t of DIGIT_TASKS.filter((x) => tasks.includes(x.name))) scores[t.name] = accuracy(w, t, taskView(t, test));
  return scores;
}

/** The same for a model file or a published version folder. */
export async function evaluateModel(path: string): Promise<Record<string, number>> {
  return evaluateWeights(loadWeights(path));
}

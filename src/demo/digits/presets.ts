import type { ZooOptions } from './zoo.js';

/**
 * The task suites of the quality benchmark (docs/quality.md): 8 tasks that are distinct input
 * distributions (rotations, a zoom, a shift, a mirror, noise) or label problems (parity, mod 3),
 * and 14- and 20-task supersets that add harder, more conflicting ones.
 */
const SUITE_8 = ['rot45', 'rot315', 'zoom', 'nudge', 'mirror', 'noise', 'parity', 'mod3'];
const SUITE_14 = [...SUITE_8, 'rot90', 'flip', 'shift', 'shrink', 'small', 'upright'];
const SUITE_20 = [...SUITE_14, 'rot180', 'rot270', 'transpose', 'perm-a', 'patches-a', 'rot180-parity'];

export const SUITES: Readonly<Record<string, readonly string[]>> = { '8': SUITE_8, '14': SUITE_14, '20': SUITE_20 };

/** How the benchmark's models are trained (the same for every suite: one base, one recipe). */
export function benchZoo(tasks: readonly string[]): ZooOptions {
  return {
    tasks,
    widths: [128, 128, 64],
    samples: 4000,
    jitterCopies: 1,
    pretrain: { epochs: 3, lr: 1e-3, batch: 128, seed: 1 },
    finetune: { epochs: 2, lr: 1e-3, batch: 128, seed: 3 },
  };
}

/** The demo's smaller recipe: the first `count` tasks of the 8-task suite, trained in seconds. */
export function demoZoo(count: number): ZooOptions {
  const full = benchZoo(SUITES['8']!.slice(0, count));
  return { ...full, samples: 2000, pretrain: { ...full.pretrain, epochs: 2 } };
}

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AccuracySummary } from '../../src/store/index.js';
import type { Zoo } from '../../src/demo/digits/zoo.js';
import { loadDigits } from '../../src/demo/digits/data.js';
import { machine, repoRoot } from '../lib.js';
import type { OrderResult } from './daemon-run.js';
import { heatmapSvg, linesSvg } from './plots.js';

export interface ReportInput {
  readonly suite: string;
  readonly tasks: readonly string[];
  readonly zoo: Zoo;
  readonly methods: readonly string[];
  readonly results: readonly OrderResult[];
  readonly command: string;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: readonly number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const pct = (x: number) => (100 * x).toFixed(1);
const pm = (xs: readonly number[]) => `${pct(mean(xs))} ± ${pct(std(xs))}`;

/** Average accuracy after each step t: the mean of R[t][i] over the tasks merged up to t. */
function accOverSteps(s: AccuracySummary): number[] {
  return s.matrix.map((row, t) => mean(row.slice(0, t + 1).map((x) => x ?? 0)));
}

/** Accuracy of each task after the last step, by task name. */
function finalByTask(s: AccuracySummary): Record<string, number> {
  return Object.fromEntries(s.tasks.map((t, i) => [t, s.matrix.at(-1)![i] ?? NaN]));
}

function figures(input: ReportInput, method: string) {
  const sums = input.results.map((r) => r.methods[method]!);
  return {
    acc: sums.map((s) => s.average_accuracy ?? NaN),
    bwt: sums.map((s) => s.bwt ?? NaN),
    forgetting: sums.map((s) => s.forgetting ?? NaN),
    steps: input.tasks.map((_, t) => mean(sums.map((s) => accOverSteps(s)[t]!))),
    perTask: input.tasks.map((task) => mean(sums.map((s) => finalByTask(s)[task]!))),
  };
}

/** Paired comparison over orders: mean of (a − b), its std, and in how many orders a was above b. */
function compare(input: ReportInput, a: string, b: string): string {
  const fa = figures(input, a).acc;
  const fb = figures(input, b).acc;
  const diff = fa.map((x, i) => x - fb[i]!);
  const wins = diff.filter((d) => d > 0).length;
  const verdict =
    mean(diff) > 0 && wins === diff.length
      ? 'reproduces'
      : mean(diff) > 0
        ? 'reproduces on average'
        : 'does not reproduce';
  return `| ${a} > ${b} | ${pct(mean(diff))} ± ${pct(std(diff))} | ${wins}/${diff.length} | ${verdict} |`;
}

function tables(input: ReportInput): string[] {
  const { tasks, zoo, methods } = input;
  const base = tasks.map((t) => zoo.baseAccuracy[t]!);
  const tuned = tasks.map((t) => zoo.finetunedAccuracy[t]!);
  const ranked = [...methods].sort((a, b) => mean(figures(input, b).acc) - mean(figures(input, a).acc));
  const lines = [
    `| model | ACC % | BWT % | forgetting % |`,
    '|---|---|---|---|',
    `| individual fine-tuned (upper bound) | ${pct(mean(tuned))} | | |`,
    ...ranked.map((m) => {
      const f = figures(input, m);
      return `| ${m} | ${pm(f.acc)} | ${pm(f.bwt)} | ${pm(f.forgetting)} |`;
    }),
    `| base (lower bound) | ${pct(mean(base))} | | |`,
    '',
    `Accuracy of each task after the last step (%, mean over the ${input.results.length} orders):`,
    '',
    `| model | ${tasks.join(' | ')} |`,
    `|---|${tasks.map(() => '---').join('|')}|`,
    `| individual fine-tuned | ${tuned.map(pct).join(' | ')} |`,
    ...ranked.map((m) => `| ${m} | ${figures(input, m).perTask.map(pct).join(' | ')} |`),
    `| base | ${base.map(pct).join(' | ')} |`,
  ];
  return lines;
}

function plots(input: ReportInput): string[] {
  const prefix = `quality-mnist-${input.suite}`;
  const dir = join(repoRoot, 'bench', 'results');
  writeFileSync(
    join(dir, `${prefix}-acc.svg`),
    linesSvg({
      title: `Average accuracy over the tasks merged so far (${input.tasks.length} tasks, mean over ${input.results.length} orders)`,
      xLabel: 'merge step',
      yLabel: 'ACC',
      series: input.methods.map((m) => ({ name: m, values: figures(input, m).steps })),
      references: [
        { name: 'fine-tuned', value: mean(input.tasks.map((t) => input.zoo.finetunedAccuracy[t]!)) },
        { name: 'base', value: mean(input.tasks.map((t) => input.zoo.baseAccuracy[t]!)) },
      ],
    }),
  );
  const files = [`![ACC over steps](${prefix}-acc.svg)`, ''];
  for (const m of input.methods) {
    const s = input.results[0]!.methods[m]!;
    const file = `${prefix}-matrix-${m}.svg`;
    writeFileSync(
      join(dir, file),
      heatmapSvg({
        title: `${m}: accuracy matrix, order 0 (row: after step t, column: task)`,
        rowLabels: s.steps.map((t) => `step ${t}`),
        colLabels: s.tasks,
        values: s.matrix,
      }),
    );
    files.push(`![${m} accuracy matrix](${file})`);
  }
  return files;
}

/** Writes bench/results/quality-mnist-<suite>.md (and its SVG plots); returns its path. */
export function writeReport(input: ReportInput): string {
  const m = machine();
  const path = join(repoRoot, 'bench', 'results', `quality-mnist-${input.suite}.md`);
  const paper = (['opcm', 'dop'] as const).flatMap((a) =>
    ['task_arithmetic', 'weight_average'].map((b) => compare(input, a, b)),
  );
  const body = [
    `# Continual merging on real digits: ${input.tasks.length} tasks, ${input.results.length} task orders, six methods`,
    '',
    `Command: \`npm run build && ${input.command}\` (docs/quality.md describes the design).`,
    `Tasks in order 0: ${input.tasks.join(', ')}. Models trained in ${input.zoo.seconds.toFixed(0)} s; every version merged by \`cmerge daemon\` and scored by examples/evaluate-digits.ts on ${loadDigits().test.count} held-out digits per task.`,
    'Method parameters: the defaults (measured, not tuned).',
    '',
    '| machine | |',
    '|---|---|',
    ...Object.entries(m)
      .filter(([k]) => k !== 'torch')
      .map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `## Result after the last task (mean ± std over ${input.results.length} orders)`,
    '',
    ...tables(input),
    '',
    '## Against the papers',
    '',
    'The papers (ViT-B/32, 8 tasks, 10 orders) report OPCM 75.5 and DOP above continual task arithmetic (67.5) and weight averaging. Paired over the same orders here:',
    '',
    '| claim | ACC difference, points | orders where it holds | |',
    '|---|---|---|---|',
    ...paper,
    '',
    '## Plots',
    '',
    ...plots(input),
    '',
    `Run time per order (daemon, 6 pipelines): ${input.results.map((r) => r.seconds.toFixed(0)).join(', ')} s.`,
    '',
  ];
  writeFileSync(path, body.join('\n'));
  return path;
}

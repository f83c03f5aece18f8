/**
 * Which plots a pipeline's report has, and their data. A plot without data is a note saying why
 * (nothing merged yet, a method that does not record the figure, no evaluator), never an empty chart.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { LineageStatus, ReportData, ReportMerge } from '../store/index.js';
import { heatmapSpec, stepSpec, type Cell, type StepPoint } from './charts.js';

export interface Plot {
  /** stable name: the page's data-plot attribute (tests and readers find plots by it) */
  id: string;
  title: string;
  /** what it shows, under the plot */
  caption: string;
  spec: TopLevelSpec | null;
  /** shown instead of the plot when there is nothing to draw */
  note: string;
}

const LINEAGE: Record<LineageStatus, string> = {
  current: 'current lineage',
  rolled_back: 'rolled back',
  reverted: 'reverted',
  superseded: 'superseded',
};

type Figure =
  'lambda' | 'task_vector_norm' | 'merged_task_vector_norm' | 'removed_share' | 'interference' | 'duration_s';

/** One series of a per-merge figure; merges that did not record it are left out. */
function series(merges: ReportMerge[], figure: Figure, name: string): StepPoint[] {
  return merges
    .filter((m) => m[figure] !== null)
    .map((m) => ({ step: m.step, value: m[figure]!, series: name, lineage: LINEAGE[m.lineage] }));
}

const NOTHING_MERGED = 'Nothing merged yet.';

/** A plot of per-merge figures, or its note when no merge recorded them. */
function stepPlot(
  d: ReportData,
  id: string,
  title: string,
  caption: string,
  points: StepPoint[],
  opts: { yTitle: string; zero?: boolean; missing: string },
): Plot {
  const spec = points.length ? stepSpec(points, { description: title, yTitle: opts.yTitle, zero: opts.zero }) : null;
  return { id, title, caption, spec, note: d.merges.length ? opts.missing : NOTHING_MERGED };
}

function mergePlots(d: ReportData): Plot[] {
  const m = d.merges;
  return [
    stepPlot(
      d,
      'lambda',
      'λ per merge step',
      "OPCM's scaling λ_t of the merged task vectors.",
      series(m, 'lambda', 'λ'),
      {
        yTitle: 'λ',
        missing: 'No λ recorded: the method has none (λ is OPCM’s).',
      },
    ),
    stepPlot(
      d,
      'norms',
      'Task-vector norms per merge step',
      '‖τ_t‖ = ‖θ_t − θ0‖ of the checkpoint merged at step t, and ‖M_t − θ0‖ of the merged model.',
      [...series(m, 'task_vector_norm', '‖τ_t‖'), ...series(m, 'merged_task_vector_norm', '‖M_t − θ0‖')],
      { yTitle: 'L2 norm', zero: true, missing: 'No norms recorded for these merges.' },
    ),
    stepPlot(
      d,
      'removed_share',
      'Removed share per merge step',
      'Share of the new task vector OPCM removed as interference (norm-weighted over tensors).',
      series(m, 'removed_share', 'removed share'),
      {
        yTitle: 'removed share',
        zero: true,
        missing: 'No removed share recorded: the method does not compute it (OPCM does).',
      },
    ),
    stepPlot(
      d,
      'interference',
      'Interference per merge step',
      'Share of the update M_t − M_{t−1} inside the previous merged model’s dominant subspace.',
      series(m, 'interference', 'interference'),
      {
        yTitle: 'interference',
        zero: true,
        missing: 'No interference recorded: the method does not compute it (OPCM does).',
      },
    ),
    stepPlot(
      d,
      'durations',
      'Merge duration per step',
      'Wall time of each committed merge, from its start to its commit.',
      series(m, 'duration_s', 'duration'),
      { yTitle: 'seconds', zero: true, missing: 'No merge durations recorded.' },
    ),
  ];
}

function retentionPlot(d: ReportData): Plot {
  const cells: Cell[] = [];
  d.retention.forEach((row, t) =>
    row.forEach((rho, i) => {
      if (rho !== null) cells.push({ row: `t=${t + 1}`, col: `task ${i + 1}`, value: rho });
    }),
  );
  const steps = d.retention.map((_, t) => `t=${t + 1}`);
  const tasks = d.retention.map((_, i) => `task ${i + 1}`);
  return {
    id: 'retention',
    title: 'Retention matrix ρ[t][i]',
    caption:
      'Data-free estimate of how much of task i the merged model keeps after step t (1 = all). The diagonal is plasticity; down a column, forgetting. Current lineage only.',
    spec: cells.length
      ? heatmapSpec(cells, {
          description: 'retention matrix',
          rows: steps,
          cols: tasks,
          rowTitle: 'after step t',
          colTitle: 'task i (merged at step i)',
          valueTitle: 'ρ',
        })
      : null,
    note: d.merges.length ? 'No retention recorded for these merges.' : NOTHING_MERGED,
  };
}

const NO_EVALUATOR = 'No evaluator scores recorded (configure an evaluator: docs/evaluator.md).';

function accuracyPlots(d: ReportData): Plot[] {
  const a = d.accuracy;
  const rows = a.steps.map((s) => `t=${s}`);
  const cells: Cell[] = [];
  a.matrix.forEach((row, r) =>
    row.forEach((score, c) => {
      if (score !== null) cells.push({ row: rows[r]!, col: a.tasks[c]!, value: score });
    }),
  );
  const overSteps: StepPoint[] = d.accuracy_over_steps.flatMap((p) => [
    ...(p.average_accuracy === null ? [] : [{ step: p.step, value: p.average_accuracy, series: 'ACC', lineage: '' }]),
    ...(p.bwt === null ? [] : [{ step: p.step, value: p.bwt, series: 'BWT', lineage: '' }]),
  ]);
  return [
    {
      id: 'accuracy',
      title: 'Accuracy matrix R[t][i]',
      caption: "The evaluator's score of task i on the version of step t (current lineage).",
      spec: cells.length
        ? heatmapSpec(cells, {
            description: 'accuracy matrix',
            rows,
            cols: a.tasks,
            rowTitle: 'version of step t',
            colTitle: 'task',
            valueTitle: 'score',
          })
        : null,
      note: NO_EVALUATOR,
    },
    {
      id: 'acc_bwt',
      title: 'ACC and BWT over steps',
      caption:
        'Average accuracy over the tasks merged so far, and backward transfer (mean of R[t][i] − R[i][i], i < t).',
      spec: overSteps.length ? stepSpec(overSteps, { description: 'ACC and BWT', yTitle: 'score' }) : null,
      note: NO_EVALUATOR,
    },
  ];
}

/** Every plot of a pipeline's report, in page order. */
export function pipelinePlots(d: ReportData): Plot[] {
  const [lambda, norms, removed, interference, durations] = mergePlots(d);
  return [lambda!, norms!, removed!, interference!, retentionPlot(d), ...accuracyPlots(d), durations!];
}

import type { Command } from 'commander';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/index.js';
import { Daemon } from '../daemon/daemon.js';
import { demoZoo, SUITES } from '../demo/digits/presets.js';
import type { Zoo } from '../demo/digits/zoo.js';
import { isMethodName, METHOD_NAMES } from '../methods/registry.js';
import { openStore, type AccuracySummary, type Store } from '../store/index.js';

import { UsageError } from './errors.js';

/** The evaluator program the demo's daemon runs (examples/evaluate-digits.ts, compiled). */
const EVALUATOR = resolve(dirname(fileURLToPath(import.meta.url)), '../../examples/evaluate-digits.js');
const PIPELINE = 'digits';
const EVALUATOR_TIMEOUT_S = 120;
/**
 * Where the demo leaves its config, database, models and versions by default, relative to where it
 * runs: the README's examples after its set-up use `demo/cmerge.yaml` and `demo/models/`.
 */
const DEFAULT_DIR = 'demo';
/** First line of the config the demo writes: it marks a folder a later run may start afresh. */
const CONFIG_MARK = '# written by cmerge demo; a new run of the demo replaces everything here but models/';

/**
 * The embedded default: real models on real data, merged by the daemon as they arrive. Trains a
 * small digits classifier (a base pretrained on MNIST digits and one fine-tuned model per task),
 * runs the daemon with the example evaluator, drops the checkpoints one by one the way a producer
 * should (a dot-named file, then a rename), plus one broken file, and prints after each version
 * the per-task accuracy, ACC and BWT next to the base and the individual fine-tuned models.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'merge small classifiers trained on real MNIST digits as they arrive, and show the accuracy of every version (needs no data)',
    )
    .option(
      '--dir <dir>',
      'work folder: config, database, models, versions (an earlier demo in it is replaced)',
      DEFAULT_DIR,
    )
    .option('--tasks <n>', 'number of tasks, 2 to 8', '4')
    .option('--method <name>', `merge method: ${METHOD_NAMES.join(', ')}`, 'opcm')
    .action(async (opts: { dir: string; tasks: string; method: string }) => {
      const count = Number(opts.tasks);
      if (!Number.isInteger(count) || count < 2 || count > SUITES['8']!.length)
        throw new UsageError(`--tasks must be an integer from 2 to ${SUITES['8']!.length}`);
      if (!isMethodName(opts.method))
        throw new UsageError(`unknown method ${opts.method} (one of ${METHOD_NAMES.join(', ')})`);
      const dir = resolve(opts.dir);
      clearEarlierRun(dir);
      // written first, so that a run stopped while training is still an earlier demo to the next one
      const configPath = writeDemoConfig(dir, opts.method);
      const out = (line = '') => process.stdout.write(line + '\n');
      out(`cmerge demo: ${opts.method} over ${count} tasks on real MNIST digits, in ${dir}`);
      // loaded here: TensorFlow.js takes ~0.7 s to import, which no other command should pay
      const { buildZoo } = await import('../demo/digits/zoo.js');
      const zoo = await buildZoo(join(dir, 'models'), demoZoo(count), (line) => out(`  ${line}`));
      await runDaemon(configPath, dir, zoo, out);
    });
}

/**
 * Makes `dir` ready for a run: a new or empty folder is used as it is; one holding an earlier demo
 * (its config starts with CONFIG_MARK) is emptied but for models/, which the zoo reuses when its
 * recipe matches, so running the README's set-up again gives the same fresh demo folder. Anything
 * else is refused: the demo never deletes files it did not write.
 */
function clearEarlierRun(dir: string): void {
  if (!existsSync(dir) || readdirSync(dir).length === 0) return;
  const config = join(dir, 'cmerge.yaml');
  if (!existsSync(config) || !readFileSync(config, 'utf8').startsWith(CONFIG_MARK))
    throw new UsageError(`${dir} is not empty and holds no earlier demo (its cmerge.yaml); give another --dir`);
  for (const entry of readdirSync(dir))
    if (entry !== 'models') rmSync(join(dir, entry), { recursive: true, force: true });
}

function writeDemoConfig(dir: string, method: string): string {
  const configPath = join(dir, 'cmerge.yaml');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    configPath,
    [
      CONFIG_MARK,
      'state_dir: ./state',
      'log_level: warn',
      'pipelines:',
      `  - name: ${PIPELINE}`,
      '    base: ./models/base.safetensors',
      '    drop: ./drop',
      '    repository: ./models-published',
      `    method: ${method}`,
      '    settle_ms: 200',
      '    # the task heads are not merged: each task keeps its own (copied from the base)',
      '    tensors: {exclude: ["heads.*"]}',
      `    evaluator: {argv: [${JSON.stringify(process.execPath)}, ${JSON.stringify(EVALUATOR)}], timeout_s: ${EVALUATOR_TIMEOUT_S}}`,
      '',
    ].join('\n'),
  );
  return configPath;
}

async function runDaemon(configPath: string, dir: string, zoo: Zoo, out: (line?: string) => void): Promise<void> {
  const tasks = zoo.checkpoints.map((c) => c.task);
  const daemon = new Daemon(configPath);
  await daemon.start();
  const store = openStore(loadConfig(configPath).db_path, { readonly: true });
  try {
    const drop = join(dir, 'drop');
    mkdirSync(drop, { recursive: true });
    writeFileSync(join(drop, 'broken.safetensors'), 'not a model\n');
    out();
    out(accuracyHeader(tasks));
    out(accuracyRow('base (lower bound)', tasks, tasks, zoo.baseAccuracy));
    for (const [i, { task, path }] of zoo.checkpoints.entries()) {
      const name = `${task}.safetensors`;
      copyFileSync(path, join(drop, `.${name}.part`));
      renameSync(join(drop, `.${name}.part`), join(drop, name));
      const label = `v${i + 1} + ${task}`;
      if (!(await waitForEvaluation(store, i + 1, EVALUATOR_TIMEOUT_S * 1000))) {
        out(`${label.padEnd(LABEL_WIDTH)}(evaluation failed: see the daemon's log)`);
        continue;
      }
      const summary = store.accuracySummary(PIPELINE);
      const scores = Object.fromEntries(summary.tasks.map((t, k) => [t, summary.matrix.at(-1)![k] ?? null]));
      out(accuracyRow(label, tasks, tasks.slice(0, i + 1), scores, summary));
    }
    out(accuracyRow('each fine-tuned', tasks, tasks, zoo.finetunedAccuracy));
  } finally {
    store.close();
    await daemon.stop();
  }
  out();
  out('rows v1, v2, …: the published versions, each evaluated by the daemon with examples/evaluate-digits;');
  out('ACC: mean accuracy over the tasks merged so far; BWT: mean change of each earlier task since its own version;');
  out('each fine-tuned: every task on its own fine-tuned model (the upper bound of a merge).');
  out(`versions: ${join(dir, 'models-published', PIPELINE)}; rejected: ${join(dir, 'drop', '.quarantine')}`);
  printNext(configPath, dir, tasks.length);
}

/** The follow-up commands, as the README writes them after its set-up (paths relative to here when inside). */
function printNext(configPath: string, dir: string, versions: number): void {
  const here = (p: string) => {
    const r = relative(process.cwd(), p);
    return r !== '' && !r.startsWith('..') && !isAbsolute(r) ? r : p;
  };
  const config = `--config ${here(configPath)}`;
  process.stdout.write(
    [
      '',
      `inspect the daemon's database and versions (README, "Inspection"):`,
      `  npx cmerge status ${config}`,
      `  npx cmerge history ${config} --pipeline ${PIPELINE}`,
      `  npx cmerge show ${config} ${PIPELINE} ${versions}`,
      `  npx cmerge verify ${config}`,
      `  npx cmerge report ${config} --out ${here(join(dir, 'report.html'))}`,
      '',
    ].join('\n'),
  );
}

/**
 * Waits until version `version` is published and then for its evaluation (the daemon evaluates
 * right after publishing); false when the evaluator gave nothing within its timeout.
 */
async function waitForEvaluation(store: Store, version: number, evaluatorTimeoutMs: number): Promise<boolean> {
  while (store.version(PIPELINE, version) === null) await sleep(100);
  const deadline = Date.now() + evaluatorTimeoutMs + 5_000;
  while (store.evaluations(PIPELINE, version).length === 0) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

const LABEL_WIDTH = 18;
const cellWidth = (task: string) => Math.max(task.length, 6) + 2;
const pctCell = (x: number | null | undefined) => (x === null || x === undefined ? '·' : (100 * x).toFixed(1));
const signed = (x: number | null) => (x === null ? '-' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`);

/** Header of the demo's table: one column per task (accuracy in %), then ACC and BWT. */
function accuracyHeader(tasks: readonly string[]): string {
  return 'model'.padEnd(LABEL_WIDTH) + tasks.map((t) => t.padStart(cellWidth(t))).join('') + '     ACC     BWT';
}

/** One row: the scores of `shown` tasks (the others as ·), with ACC and BWT when a summary is given. */
function accuracyRow(
  label: string,
  tasks: readonly string[],
  shown: readonly string[],
  scores: Readonly<Record<string, number | null>>,
  summary?: AccuracySummary,
): string {
  const cells = tasks.map((t) => (shown.includes(t) ? pctCell(scores[t]) : '·').padStart(cellWidth(t))).join('');
  const mean = shown.reduce((a, t) => a + (scores[t] ?? 0), 0) / shown.length;
  const acc = summary ? pctCell(summary.average_accuracy) : pctCell(mean);
  const bwt = summary ? signed(summary.bwt) : '';
  return label.padEnd(LABEL_WIDTH) + cells + acc.padStart(8) + bwt.padStart(8);
}

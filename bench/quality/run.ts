/**
 * The continual-merging quality benchmark on real data (docs/quality.md): a digits backbone
 * pretrained on MNIST, one fine-tuned checkpoint per task, merged by the daemon in several task
 * orders with each of the six methods, every version scored by the example evaluator.
 *
 *   node dist/bench/quality/run.js [--suite 8|14|20] [--orders N] [--work DIR] [--methods a,b]
 *
 * Writes bench/results/quality-mnist-<suite>.md and its plots; everything reruns from the cache
 * in --work (default bench/work/quality), so an interrupted run continues where it stopped.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchZoo, SUITES } from '../../src/demo/digits/presets.js';
import { buildZoo } from '../../src/demo/digits/zoo.js';
import { permutation } from '../../src/demo/random.js';
import { METHOD_NAMES } from '../../src/methods/registry.js';
import { repoRoot } from '../lib.js';
import { runOrder, type OrderResult } from './daemon-run.js';
import { writeReport } from './report.js';

const { values } = parseArgs({
  options: {
    suite: { type: 'string', default: '8' },
    orders: { type: 'string', default: '10' },
    work: { type: 'string', default: join(repoRoot, 'bench', 'work', 'quality') },
    methods: { type: 'string', default: METHOD_NAMES.join(',') },
  },
});
const tasks = SUITES[values.suite!];
if (!tasks) throw new Error(`--suite must be one of ${Object.keys(SUITES).join(', ')}`);
const methods = values.methods!.split(',');
const orderCount = Number(values.orders);
const work = join(values.work!, `suite-${values.suite}`);

const zoo = await buildZoo(join(work, 'models'), benchZoo(tasks), (line) => console.log(line));
console.log(`models ready (${zoo.seconds.toFixed(0)} s to train)`);
/** Order 0 is the suite's own order; the others are seeded shuffles, the same on every run. */
const orders = Array.from({ length: orderCount }, (_, k) =>
  k === 0 ? [...tasks] : permutation(tasks.length, 100 + k).map((i) => tasks[i]!),
);
const results: OrderResult[] = [];
for (const [k, order] of orders.entries()) {
  const result = await runOrder(join(work, `order-${k}`), zoo, order, methods);
  results.push(result);
  const accs = methods.map((m) => `${m} ${(100 * (result.methods[m]!.average_accuracy ?? NaN)).toFixed(1)}`);
  console.log(`order ${k} (${result.seconds.toFixed(0)} s): ${accs.join(', ')}`);
}
const command = `node dist/bench/quality/run.js --suite ${values.suite} --orders ${orderCount}`;
console.log(`wrote ${writeReport({ suite: values.suite!, tasks, zoo, methods, results, command })}`);

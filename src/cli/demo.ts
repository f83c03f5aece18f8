import type { Command } from 'commander';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeDemoModels } from '../demo/synth.js';
import { createEngine } from '../engine/index.js';
import { runMerge } from '../merge/runner.js';
import { configureLog, log } from '../util/log.js';

/** The embedded default: makes a small base model and fine-tuned checkpoints, merges them one
 * by one with OPCM (each a separate continuation of the same state), and prints what happened. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('merge made-up checkpoints of a small model, one at a time, and show what happened (needs no data)')
    .option('--dir <dir>', 'work folder (default: a new temporary folder)')
    .option('--tasks <n>', 'number of fine-tuned checkpoints', '4')
    .option('--method <name>', 'merge method', 'opcm')
    .option('--engine <engine>', 'auto | native | portable', 'auto')
    .action(async (o: { dir?: string; tasks: string; method: string; engine: string }) => {
      configureLog({ stream: 'stderr' });
      const dir = resolve(o.dir ?? mkdtempSync(join(tmpdir(), 'cmerge-demo-')));
      const { base, tasks } = writeDemoModels(join(dir, 'models'), Number(o.tasks));
      log.info(`made a base model and ${tasks.length} fine-tuned checkpoints in ${join(dir, 'models')}`);
      const engine = createEngine(o.engine as 'auto' | 'native' | 'portable');
      try {
        for (const [i, task] of tasks.entries()) {
          const out = join(dir, 'merged', `step_${i + 1}.safetensors`);
          const r = await runMerge({ base, stateDir: join(dir, 'state'), method: o.method, checkpoints: [task], out, engine });
          const s = r.steps[0];
          const splits = Object.values((s.summary.split_rank as Record<string, number>) ?? {});
          const lam = typeof s.scalars.lambda === 'number' ? `λ=${s.scalars.lambda.toFixed(4)}` : '';
          const split = splits.length ? `mean split rank ${(splits.reduce((a, b) => a + b, 0) / splits.length).toFixed(1)}` : '';
          process.stdout.write(`merged ${task.split('/').pop()} as step ${s.t}: ‖τ‖=${s.task_vector_norm.toFixed(4)} ${lam} ${split} → ${out} (${r.seconds.total.toFixed(2)} s)\n`);
        }
      } finally {
        engine.close();
      }
      process.stdout.write(`done: merge state in ${join(dir, 'state')}, merged models in ${join(dir, 'merged')}\n`);
    });
}

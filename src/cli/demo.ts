import type { Command } from 'commander';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Daemon } from '../daemon/daemon.js';
import { writeDemoModels } from '../demo/synth.js';
import { readCurrent } from '../publish/index.js';
import { log } from '../util/log.js';

/**
 * The embedded default: the daemon at work on made-up data. Makes a small base model and
 * fine-tuned checkpoints, writes a config, runs the daemon, drops the checkpoints one by one the
 * way a producer should (write a dot-named file, then rename), plus one broken file, and prints
 * the published versions.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the daemon on made-up checkpoints of a small model and show what happens (needs no data)')
    .option('--dir <dir>', 'work folder (default: a new temporary folder)')
    .option('--tasks <n>', 'number of fine-tuned checkpoints', '4')
    .option('--method <name>', 'merge method', 'opcm')
    .action(async (o: { dir?: string; tasks: string; method: string }) => {
      const dir = resolve(o.dir ?? mkdtempSync(join(tmpdir(), 'cmerge-demo-')));
      const { tasks } = writeDemoModels(join(dir, 'models'), Number(o.tasks));
      const configPath = join(dir, 'cmerge.yaml');
      writeFileSync(
        configPath,
        [
          'state_dir: ./state',
          'pipelines:',
          '  - name: demo',
          '    base: ./models/base.safetensors',
          '    drop: ./drop',
          '    repository: ./models-published',
          `    method: ${o.method}`,
          '    settle_ms: 200',
          '    notifiers:',
          '      - {type: command, argv: ["/bin/sh", "-c", "echo version {version} is at {path} >> notified.log"], cwd: "."}',
          '',
        ].join('\n'),
      );
      const daemon = new Daemon(configPath);
      await daemon.start();
      log.info(
        `demo: made a base model and ${tasks.length} fine-tuned checkpoints in ${join(dir, 'models')}; config ${configPath}`,
      );
      const drop = join(dir, 'drop');
      const repo = join(dir, 'models-published');
      mkdirSync(drop, { recursive: true });
      writeFileSync(join(drop, 'broken.safetensors'), 'not a model\n');
      for (const [i, task] of tasks.entries()) {
        const name = `task_${i}.safetensors`;
        copyFileSync(task, join(drop, `.${name}.part`));
        renameSync(join(drop, `.${name}.part`), join(drop, name));
        while ((await readCurrent(repo, 'demo')) !== i + 1) await sleep(100);
      }
      await daemon.stop();
      process.stdout.write(`\nversions published in ${join(repo, 'demo')}:\n`);
      for (let v = 1; v <= tasks.length; v++) {
        const m = JSON.parse(readFileSync(join(repo, 'demo', String(v), 'manifest.json'), 'utf8'));
        const lam = typeof m.metrics?.lambda === 'number' ? `λ=${m.metrics.lambda.toFixed(3)}` : '';
        process.stdout.write(
          `  ${v}/  ${m.checkpoints.length} checkpoints (newest ${m.checkpoints.at(-1).name}), ‖τ‖=${Number(m.metrics?.task_vector_norm).toFixed(3)} ${lam}\n`,
        );
      }
      process.stdout.write(`rejected: ${join(drop, '.quarantine')} (see the .reason.txt beside each file)\n`);
      process.stdout.write(`inspect: cmerge status --config ${configPath}; cmerge history --config ${configPath}\n`);
    });
}

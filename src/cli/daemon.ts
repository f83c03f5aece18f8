import type { Command } from 'commander';
import { runDaemon } from '../daemon/lifecycle.js';

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .description('watch the drop folders of a config and merge, publish and record every checkpoint')
    .requiredOption('--config <file>', 'YAML configuration')
    .option(
      '--incomplete-timeout <seconds>',
      'reject checkpoints that stay incomplete (unchanged) this long, in pipelines without intake.incomplete_timeout_s (default 600)',
    )
    .action(async (o: { config: string; incompleteTimeout?: string }) => {
      const incompleteTimeoutMs = o.incompleteTimeout === undefined ? undefined : Number(o.incompleteTimeout) * 1000;
      const code = await runDaemon(o.config, { incompleteTimeoutMs });
      // a failed start-up can leave watchers open; stdout is a pipe or file here, written synchronously
      process.exit(code);
    });
}

import { renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { pipelineNames, withInspection } from './inspect-common.js';

interface ReportOptions {
  config: string;
  pipeline?: string;
  out: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      'write a self-contained HTML report (versions, lineage, metric plots, accuracy, notifications, rejections, operations); reads the database, the daemon may run',
    )
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--pipeline <name>', 'only this pipeline (default: every pipeline, one section each)')
    .requiredOption('--out <file>', 'the HTML file to write')
    .action(async (opts: ReportOptions) => {
      // loaded here, not at the top: Vega takes a quarter of a second to load, which every other
      // command would pay for nothing
      const { renderReport, reportData } = await import('../report/index.js');
      const html = await withInspection(opts.config, async (inspection) => {
        const names = pipelineNames(inspection);
        if (opts.pipeline !== undefined && !names.includes(opts.pipeline)) {
          throw new Error(`unknown pipeline "${opts.pipeline}" (known: ${names.join(', ') || 'none'})`);
        }
        const chosen = opts.pipeline === undefined ? names : [opts.pipeline];
        return renderReport(chosen.map((name) => reportData(inspection.store, name)));
      });
      writeAtomically(resolve(opts.out), html);
      process.stderr.write(`wrote ${opts.out} (${Math.ceil(Buffer.byteLength(html) / 1024)} KiB)\n`);
    });
}

/** Written beside, then renamed: a browser or web server never sees half a report. */
function writeAtomically(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

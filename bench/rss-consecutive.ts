import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath, machine, machineTable, repoRoot, synth, timed, writeResult } from './lib.js';

/**
 * Peak RSS of 10 consecutive OPCM merges, each its own `cmerge merge` process continuing the same
 * state (ViT-B/32 shapes): memory must not grow with the number of models merged.
 *   node dist/bench/rss-consecutive.js [data-dir] [merges]
 */
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'vitb32');
const n = Number(process.argv[3] ?? 10);
synth(data, 'vitb32', n, 'F32');
const work = join(data, 'bench-rss');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const rows = [];
for (let i = 0; i < n; i++) {
  const r = timed('node', [
    cliPath,
    'merge',
    '--base',
    join(data, 'base.safetensors'),
    '--state',
    join(work, 'state'),
    '--method',
    'opcm',
    '--out',
    join(work, 'merged.safetensors'),
    join(data, `task_${i}.safetensors`),
  ]);
  rows.push(r);
  process.stderr.write(`merge ${i + 1}: ${r.seconds.toFixed(2)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB\n`);
}
const ratio = rows[n - 1].peakRssMiB / rows[1].peakRssMiB;
const text = `# Peak RSS over ${n} consecutive OPCM merges (ViT-B/32 shapes)

Command: \`npm run build && node dist/bench/rss-consecutive.js ${process.argv[2] ?? ''} ${n}\` (data: shared/reference/synth.py vitb32 ${n} F32 seed 0).
Each merge is its own \`cmerge merge\` process continuing the same state directory; \`/usr/bin/time\` peak RSS.

| machine | |
|---|---|
${machineTable(machine())}

| merge | wall s | peak RSS MiB |
|---|---|---|
${rows.map((r, i) => `| ${i + 1} | ${r.seconds.toFixed(2)} | ${r.peakRssMiB.toFixed(1)} |`).join('\n')}

- merge ${n} / merge 2 peak RSS: **${ratio.toFixed(4)}** (${((ratio - 1) * 100).toFixed(2)} %; bound: within 5 %)
`;
const path = writeResult('rss-consecutive-vitb32', text);
process.stdout.write(text + `\nwritten to ${path}\n`);

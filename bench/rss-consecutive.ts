import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath, machine, machineTable, repoRoot, synth, timed, writeResult } from './lib.js';

/**
 * Peak RSS of 10 consecutive OPCM merges, each its own `cmerge merge` process continuing the same
 * state (ViT-B/32 shapes): memory must not grow with the number of models merged.
 *   node dist/bench/rss-consecutive.js [data-dir] [merges]
 * Peak RSS of one process varies by a few per cent from run to run (allocation timing, GC), so
 * merge 2 and merge N are also repeated BENCH_REPEATS times (default 3) from copies of the state
 * they started from: the growth is judged on the means, against the spread of the repeats.
 */
const repeats = Number(process.env.BENCH_REPEATS ?? 3);
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'vitb32');
const n = Number(process.argv[3] ?? 10);
synth(data, 'vitb32', n, 'F32');
const work = join(data, 'bench-rss');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const merge = (state: string, i: number) =>
  timed('node', [
    cliPath,
    'merge',
    '--base',
    join(data, 'base.safetensors'),
    '--state',
    state,
    '--method',
    'opcm',
    '--out',
    join(work, 'merged.safetensors'),
    join(data, `task_${i}.safetensors`),
  ]);
const rows: ReturnType<typeof timed>[] = [];
const again = [1, n - 1];
for (let i = 0; i < n; i++) {
  if (again.includes(i)) cpSync(join(work, 'state'), join(work, `state-before-${i}`), { recursive: true });
  const r = merge(join(work, 'state'), i);
  rows.push(r);
  process.stderr.write(`merge ${i + 1}: ${r.seconds.toFixed(2)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB\n`);
}
// The repeats: merge i again from the state it started from (a fresh copy each time).
const repeated = again.map((i) => {
  const xs = [rows[i].peakRssMiB];
  for (let k = 0; k < repeats; k++) {
    const state = join(work, `state-repeat`);
    rmSync(state, { recursive: true, force: true });
    cpSync(join(work, `state-before-${i}`), state, { recursive: true });
    xs.push(merge(state, i).peakRssMiB);
    process.stderr.write(`merge ${i + 1} again: peak RSS ${xs[xs.length - 1].toFixed(0)} MiB\n`);
  }
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { i, xs, mean, min: Math.min(...xs), max: Math.max(...xs) };
});
rmSync(join(work, 'state-repeat'), { recursive: true, force: true });
for (const i of again) rmSync(join(work, `state-before-${i}`), { recursive: true, force: true });
const ratio = rows[n - 1].peakRssMiB / rows[1].peakRssMiB;
const meanRatio = repeated[1].mean / repeated[0].mean;
// least-squares slope of peak RSS over merges 2..n (MiB per merge)
const xsFit = rows.slice(1).map((_, j) => j + 2);
const ysFit = rows.slice(1).map((r) => r.peakRssMiB);
const mx = xsFit.reduce((a, b) => a + b, 0) / xsFit.length;
const my = ysFit.reduce((a, b) => a + b, 0) / ysFit.length;
const slope =
  xsFit.reduce((a, x, j) => a + (x - mx) * (ysFit[j] - my), 0) / xsFit.reduce((a, x) => a + (x - mx) ** 2, 0);
const text = `# Peak RSS over ${n} consecutive OPCM merges (ViT-B/32 shapes)

Command: \`npm run build && node dist/bench/rss-consecutive.js ${process.argv[2] ?? ''} ${n}\` (data: shared/reference/synth.py vitb32 ${n} F32 seed 0).
Each merge is its own \`cmerge merge\` process continuing the same state directory; \`/usr/bin/time\` peak RSS.

| machine | |
|---|---|
${machineTable(machine())}

| merge | wall s | peak RSS MiB |
|---|---|---|
${rows.map((r, i) => `| ${i + 1} | ${r.seconds.toFixed(2)} | ${r.peakRssMiB.toFixed(1)} |`).join('\n')}

- merge ${n} / merge 2 peak RSS, single runs: **${ratio.toFixed(4)}** (${((ratio - 1) * 100).toFixed(2)} %; bound: within 5 %)
- repeated (${repeats + 1} runs each, from the same starting state): ${repeated.map((r) => `merge ${r.i + 1}: mean ${r.mean.toFixed(1)} MiB, range ${r.min.toFixed(1)}–${r.max.toFixed(1)} (${r.xs.map((x) => x.toFixed(0)).join(', ')})`).join('; ')}
- merge ${n} / merge 2, means: **${meanRatio.toFixed(4)}** (${((meanRatio - 1) * 100).toFixed(2)} %)
- least-squares slope of peak RSS over merges 2–${n}: **${slope.toFixed(2)} MiB per merge** (${((slope * (n - 2) * 100) / my).toFixed(2)} % of the mean over the whole range)
`;
const path = writeResult('rss-consecutive-vitb32', text);
process.stdout.write(text + `\nwritten to ${path}\n`);

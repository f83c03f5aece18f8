import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath, machine, machineTable, repoRoot, synth, timed, writeResult, type Timed } from './lib.js';

/**
 * What transparent huge pages are worth to one OPCM step (ViT-B/32 shapes): the step under THP
 * `madvise` (cmerge advises its big buffers) and `never`, alternating, RUNS times each. Needs root;
 * the machine's setting is restored afterwards.
 *   node dist/bench/thp.js [data-dir]        (BENCH_RUNS, default 3)
 */
const THP = '/sys/kernel/mm/transparent_hugepage/enabled';
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'vitb32');
const runs = Number(process.env.BENCH_RUNS ?? 3);
synth(data, 'vitb32', 2, 'F32');
const work = join(data, 'bench-thp');
rmSync(work, { recursive: true, force: true });
const base = join(data, 'base.safetensors');
const merge = (state: string, task: number) =>
  timed('node', [
    cliPath,
    'merge',
    '--base',
    base,
    '--state',
    state,
    '--method',
    'opcm',
    '--out',
    join(work, 'out.safetensors'),
    join(data, `task_${task}.safetensors`),
  ]);
merge(join(work, 'state1'), 0);

const original = /\[(\w+)\]/.exec(readFileSync(THP, 'utf8'))![1];
const modes = ['madvise', 'never'] as const;
const results: Record<(typeof modes)[number], Timed[]> = { madvise: [], never: [] };
try {
  for (let i = 0; i < runs; i++) {
    for (const mode of modes) {
      writeFileSync(THP, mode);
      const state = join(work, `state-${mode}-${i}`);
      cpSync(join(work, 'state1'), state, { recursive: true });
      const r = merge(state, 1);
      results[mode].push(r);
      process.stderr.write(`${mode} #${i + 1}: ${r.seconds.toFixed(2)} s, ${r.minorFaults} faults\n`);
    }
  }
} finally {
  writeFileSync(THP, original);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (mode: string, r: Timed, i: number) =>
  `| ${mode} #${i + 1} | ${r.seconds.toFixed(2)} | ${r.userSeconds.toFixed(2)} | ${r.sysSeconds.toFixed(2)} | ${(r.minorFaults / 1e6).toFixed(2)} | ${r.peakRssMiB.toFixed(0)} |`;
const summary = (mode: (typeof modes)[number]) => {
  const xs = results[mode];
  return `| ${mode} (median) | ${median(xs.map((r) => r.seconds)).toFixed(2)} | ${median(xs.map((r) => r.userSeconds)).toFixed(2)} | ${median(xs.map((r) => r.sysSeconds)).toFixed(2)} | ${(median(xs.map((r) => r.minorFaults)) / 1e6).toFixed(2)} | ${median(xs.map((r) => r.peakRssMiB)).toFixed(0)} |`;
};
const text = `# OPCM step 2, ViT-B/32 shapes: transparent huge pages \`madvise\` vs \`never\`

Command: \`npm run build && node dist/bench/thp.js ${process.argv[2] ?? ''}\` (as root; data: shared/reference/synth.py vitb32 2 F32 seed 0).
cmerge advises its work buffers of 2 MiB and more as huge pages (\`native/big_alloc.cc\`); that only
takes effect with THP \`madvise\` or \`always\`. Runs alternate between the modes; the machine's
setting (\`${original}\`) was restored afterwards. Whole process, \`/usr/bin/time\`.

| machine | |
|---|---|
${machineTable(machine())}

| THP | wall s | user s | sys s | minor faults (M) | peak RSS MiB |
|---|---|---|---|---|---|
${modes.flatMap((m) => results[m].map((r, i) => row(m, r, i))).join('\n')}
${summary('madvise')}
${summary('never')}
`;
const path = writeResult('opcm-vitb32-thp', text);
process.stdout.write(text + `\nwritten to ${path}\n`);

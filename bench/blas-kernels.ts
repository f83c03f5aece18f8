import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAverage, machine, machineTable, repoRoot, writeResult } from './lib.js';

/**
 * The OpenBLAS kernel sets on this CPU: the rates of the products and reductions an OPCM step
 * leans on (bench/blas-rates.cc), one thread, per kernel set, in interleaved rounds (the machine's
 * speed drifts). "detection" is OpenBLAS's own choice (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
 * unset); "environment" is what this shell's environment sets.
 *   node dist/bench/blas-kernels.js [rounds]
 */
const rounds = Number(process.argv[2] ?? 2);
const work = mkdtempSync(join(tmpdir(), 'cmerge-blas-'));
const exe = join(work, 'blas-rates');
execFileSync('g++', [
  '-O2',
  '-std=c++20',
  '-o',
  exe,
  join(repoRoot, 'bench', 'blas-rates.cc'),
  '-lopenblas',
  '-llapack',
]);

const settings: [string, string | null][] = [
  ['environment', process.env.OPENBLAS_CORETYPE ?? null],
  ['detection', null],
  ['Haswell', 'Haswell'],
  ['SkylakeX', 'SkylakeX'],
  ['Cooperlake', 'Cooperlake'],
  ['Zen', 'Zen'],
];
const loadAtStart = loadAverage();
const rows: string[] = [];
for (let r = 0; r < rounds; r++) {
  for (const [label, coretype] of settings) {
    const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
    if (label !== 'environment') {
      delete env.OPENBLAS_CORETYPE;
      delete env.OPENBLAS_L2_SIZE;
      if (coretype) env.OPENBLAS_CORETYPE = coretype;
    }
    const [core, ...figures] = execFileSync(exe, { env, encoding: 'utf8' }).trim().split(' ');
    rows.push(`| ${r + 1} | ${label} | ${core} | ${figures.join(' | ')} |`);
  }
}
rmSync(work, { recursive: true, force: true });

const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim() ?? '?';
const avx512 = field('flags')
  .split(' ')
  .filter((f) => f.startsWith('avx512'));
const envLine = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'].map((k) => `${k}=${process.env[k] ?? '(unset)'}`).join(', ');
const text = `# OpenBLAS kernel sets on this CPU

Command: \`npm run build && node dist/bench/blas-kernels.js ${rounds}\` (\`bench/blas-rates.cc\`, g++ -O2 against
the system OpenBLAS, \`OPENBLAS_NUM_THREADS=1\`). Rates in GFLOP/s, best of 3 calls (dsymv: of 20); dsytrd in
seconds. Shapes: TinyLlama's MLP tensor, 5632×2048, and its 2048 Gram matrix.

CPU: ${field('vendor_id')}, family ${field('cpu family')}, model ${field('model')}; AVX-512 flags: ${avx512.join(' ') || 'none'}.
This shell's environment: ${envLine}.
Load average (1, 5, 15 min) when the bench started: ${loadAtStart}.

| round | setting | core OpenBLAS runs | dgemm | sgemm | dsyrk | dsymv | dsytrd s |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

| machine | |
|---|---|
${machineTable(machine())}
`;
const path = writeResult('blas-kernels', text);
process.stdout.write(text + `\nwritten to ${path}\n`);

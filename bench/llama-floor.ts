import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cleanInLanes, extractTensors, readCleanJobs } from './clean-jobs.js';
import { loadAverage, machine, machineTable, opcmStepArgs, repoRoot, synth, timed, writeResult } from './lib.js';

/**
 * What a TinyLlama-1.1B bf16 OPCM step (issue 12: ≤ 200 s) cannot go below on this machine with
 * cmerge's arithmetic:
 *   node dist/bench/llama-floor.js [data-dir]   (needs g++ and libopenblas-dev / liblapacke-dev)
 * 1. The kernels alone (bench/kernel-floor.cc: only the BLAS/LAPACK calls of the SVD and the
 *    cleaning, on layer 0's and lm_head's step-2 inputs): two processes side by side, each a whole
 *    layer, give a layer's time with both cores busy; lm_head as the step runs it, alone with two
 *    BLAS threads. 22 layers + lm_head = the algebra's floor.
 * 2. The engine on the same layer (engine.opcmClean, inputs in memory): two lanes and one.
 * 3. Step 1 (no SVD) as a whole process: reading, decoding, hashing and writing that step 2 does as
 *    well, on the same two cores. Its CPU time over two cores is added to the floor.
 */
const LAYERS = 22;
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'llama1b');
synth(data, 'llama1b', 2, 'BF16');
const work = join(data, 'bench-floor');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const loadAtStart = loadAverage();

const [layer, [head]] = extractTensors(data, ['0', 'lm_head.weight'], work);

const exe = join(work, 'kernel-floor');
const linalgDir = join(repoRoot, 'native', 'src', 'linalg');
execFileSync('g++', [
  '-O3',
  '-std=c++17',
  `-I${linalgDir}`,
  '-o',
  exe,
  join(repoRoot, 'bench', 'kernel-floor.cc'),
  join(linalgDir, 'sym_eigen.cc'),
  join(linalgDir, 'big_alloc.cc'),
  '-lopenblas',
  '-llapacke',
]);

interface KernelRow {
  name: string;
  parts: number[]; // gram, eigen, x, tv, wv
}
const parseKernels = (out: string): KernelRow[] =>
  out
    .trim()
    .split('\n')
    .map((l) => {
      const [name, ...p] = l.split(' ');
      return { name, parts: p.map(Number) };
    });
const total = (rows: KernelRow[]) => rows.reduce((a, r) => a + r.parts.reduce((x, y) => x + y, 0), 0);

/** Runs kernel-floor on `tensors` in `procs` processes at once; each process's rows. */
async function kernels(tensors: string[], procs: number, threads: number): Promise<KernelRow[][]> {
  const one = () =>
    new Promise<KernelRow[]>((resolve, reject) => {
      const child = spawn(exe, [work, ...tensors], { env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads) } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) =>
        code === 0 ? resolve(parseKernels(out)) : reject(new Error(`kernel-floor: ${code}`)),
      );
    });
  return Promise.all(Array.from({ length: procs }, one));
}

await kernels(layer, 1, 1); // warm-up: page cache, OpenBLAS
const solo = (await kernels(layer, 1, 1))[0];
const pairs = [await kernels(layer, 2, 1), await kernels(layer, 2, 1)];
// A layer's wall with both cores busy: two processes ran a layer each in the slower one's time.
const pairLayer = Math.min(...pairs.map((p) => Math.max(...p.map(total)) / 2));
const headRuns = [(await kernels([head], 1, 2))[0], (await kernels([head], 1, 2))[0]];
const headWall = Math.min(...headRuns.map(total));

// The engine on layer 0, inputs held in memory.
const jobs = readCleanJobs(layer, work);
const two = [await cleanInLanes(jobs, 2), await cleanInLanes(jobs, 2)].reduce((a, b) => (b.wall < a.wall ? b : a));
const one = await cleanInLanes(jobs, 1);

// Step 1 as a whole process: the non-algebra work of a step.
const state = join(work, 'state');
const step1 = timed(
  'node',
  opcmStepArgs(
    join(data, 'base.safetensors'),
    state,
    join(work, 'step1.safetensors'),
    join(data, 'task_0.safetensors'),
  ),
);
const step1Cpu = step1.userSeconds + step1.sysSeconds;
rmSync(work, { recursive: true, force: true });

const algebra = LAYERS * pairLayer + headWall;
const floor = algebra + step1Cpu / 2;
const names = ['gram (dsyrk)', 'eigen', 'X = P V (dgemm)', 'τ V (sgemm)', 'τ −= W Vᵀ (sgemm)'];
const text = `# OPCM step, TinyLlama-1.1B bf16: the floor of cmerge's arithmetic on this machine

Command: \`npm run build && node dist/bench/llama-floor.js ${process.argv[2] ?? ''}\` (data: synth.py llama1b 2 BF16 seed 0).
Inputs: layer 0's ${layer.length} linear tensors and lm_head (32000×2048), S_1 = τ_1 and τ_2 of step 2
(\`bench/extract_layer.py\`).

| machine | |
|---|---|
${machineTable(machine())}

Load average (1, 5, 15 min) when the bench started: ${loadAtStart}.

## The kernels alone (\`bench/kernel-floor.cc\`), one BLAS thread, one process, seconds

| tensor | ${names.join(' | ')} | sum |
|---|---|---|---|---|---|---|
${solo.map((r) => `| ${r.name} | ${r.parts.map((x) => x.toFixed(3)).join(' | ')} | ${r.parts.reduce((a, b) => a + b, 0).toFixed(3)} |`).join('\n')}
| **layer** | | | | | | **${total(solo).toFixed(2)}** |

- layer 0, two processes side by side (both cores busy), each process's sum: ${pairs.map((p) => p.map((r) => total(r).toFixed(2)).join(' and ')).join('; ')} s
  → a layer's wall with both cores busy: **${pairLayer.toFixed(2)} s** (best run)
- lm_head alone with two BLAS threads (as the step runs it): ${headRuns.map((r) => total(r).toFixed(2)).join(', ')} s
- the algebra's floor: ${LAYERS} × ${pairLayer.toFixed(2)} + ${headWall.toFixed(2)} = **${algebra.toFixed(1)} s**

## The engine on layer 0 (engine.opcmClean, inputs in memory)

| | wall s | CPU s |
|---|---|---|
| two lanes (as the step runs it), best of 2 | ${two.wall.toFixed(2)} | ${two.cpu.toFixed(2)} |
| one lane, one BLAS thread | ${one.wall.toFixed(2)} | ${one.cpu.toFixed(2)} |

The engine's CPU time beyond the kernels, one lane: ${(one.cpu - total(solo)).toFixed(2)} s per layer
(conversions, copies, the SVD's tail, the cleaning's element-wise passes, allocation).

## The rest of a step

Step 1 (no SVD; reads base and checkpoint, decodes, hashes, writes state and output) as a whole
process: ${step1.seconds.toFixed(1)} s wall, ${step1.userSeconds.toFixed(1)} s user + ${step1.sysSeconds.toFixed(1)} s sys = ${step1Cpu.toFixed(1)} s CPU.
Step 2 does all of it too (and reads the state besides), on the same two cores.

**Floor of step 2** = the algebra's floor + step 1's CPU over two cores = ${algebra.toFixed(1)} + ${(step1Cpu / 2).toFixed(1)} = **${floor.toFixed(1)} s**
(every kernel at its measured rate, nothing else in the algebra, the I/O perfectly spread over
both cores beside it).
`;
const path = writeResult('opcm-llama1b-floor', text);
process.stdout.write(text + `\nwritten to ${path}\n`);

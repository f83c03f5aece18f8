import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { openModel } from '../src/io/model.js';
import { defaultKind } from '../src/merge/kinds.js';
import { addTauChunk } from '../src/merge/update-pass.js';
import { cleanInLanes, type CleanJob } from './clean-jobs.js';
import { loadAverage, machine, machineTable, repoRoot, synth, writeResult } from './lib.js';

/**
 * What an OPCM step on ViT-B/32 shapes cannot go below on this machine with cmerge's arithmetic:
 *   node dist/bench/opcm-floor.js [data-dir]
 * 1. The algebra alone: every linear tensor's SVD of S1 and cleaning of τ2 (engine.opcmClean, the
 *    step's exact inputs, held in memory), in this process with the native engine: two lanes side by
 *    side as the step runs them, then one lane (its CPU time without contention).
 * 2. The bytes alone: reading base, checkpoint and state (page cache), hashing the two inputs,
 *    writing and fsyncing state and output of the same size.
 * The step needs both; they overlap only where the main thread's I/O runs beside the lanes.
 */
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'vitb32');
synth(data, 'vitb32', 2, 'F32');
const loadAtStart = loadAverage();
const paths = ['base', 'task_0', 'task_1'].map((f) => join(data, `${f}.safetensors`));
const [base, t0, t1] = paths.map((p) => openModel(p));

// The linear tensors by cmerge's default rule; τ formed as the update pass forms it.
const jobs: CleanJob[] = [];
for (const [name, info] of base.tensors) {
  if (defaultKind(info) !== 'linear') continue;
  const b = base.readF32(name);
  const tauOf = (ckpt: Float32Array) => {
    addTauChunk(ckpt, b, ckpt, { tauSq: 0, baseSq: 0 });
    return ckpt;
  };
  jobs.push({ name, m: info.shape[0], n: info.shape[1], prev: tauOf(t0.readF32(name)), tau: tauOf(t1.readF32(name)) });
}

function bytes(): { wall: number; cpu: number; mib: number } {
  const out = join(data, 'floor-write.bin');
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let moved = 0;
  let size = 0; // the state and the output are the size of a model: the base's
  for (const p of paths) {
    const buf = readFileSync(p);
    moved += buf.length;
    if (p === paths[0]) size = buf.length;
    else createHash('sha256').update(buf).digest('hex');
  }
  const block = Buffer.alloc(64 << 20, 1);
  for (let f = 0; f < 2; f++) {
    const fd = openSync(out, 'w');
    const h = createHash('sha256');
    for (let off = 0; off < size; off += block.length) {
      const b = block.subarray(0, Math.min(block.length, size - off));
      h.update(b);
      writeSync(fd, b);
    }
    h.digest('hex');
    fsyncSync(fd);
    closeSync(fd);
    moved += size;
    rmSync(out);
  }
  const c = process.cpuUsage(cpu0);
  return { wall: (performance.now() - start) / 1000, cpu: (c.user + c.system) / 1e6, mib: moved / 2 ** 20 };
}

await cleanInLanes(jobs, 2); // warm-up: page in, JIT, OpenBLAS threads
const two = [await cleanInLanes(jobs, 2), await cleanInLanes(jobs, 2)];
const one = await cleanInLanes(jobs, 1);
bytes();
const io = [bytes(), bytes()];
const best = <T extends { wall: number }>(xs: T[]) => xs.reduce((a, b) => (b.wall < a.wall ? b : a));
const a2 = best(two),
  b = best(io);
const text = `# OPCM step, ViT-B/32 shapes: the floor of cmerge's arithmetic on this machine

Command: \`npm run build && node dist/bench/opcm-floor.js ${process.argv[2] ?? ''}\` (data: synth.py vitb32 2 F32 seed 0).
${jobs.length} linear tensors (S1 = τ1, cleaning τ2, as in step 2), inputs held in memory.

| machine | |
|---|---|
${machineTable(machine())}

Load average (1, 5, 15 min) when the bench started: ${loadAtStart}.

| part | wall s | CPU s |
|---|---|---|
| algebra, 2 lanes (as the step runs it), best of 2 | ${a2.wall.toFixed(2)} | ${a2.cpu.toFixed(2)} |
| algebra, 1 lane, 1 BLAS thread | ${one.wall.toFixed(2)} | ${one.cpu.toFixed(2)} |
| bytes: read 3 models, hash 2, write + fsync 2 (${b.mib.toFixed(0)} MiB), best of 2 | ${b.wall.toFixed(2)} | ${b.cpu.toFixed(2)} |

- the algebra's CPU time over 2 cores, if it parallelized perfectly: ${(one.cpu / 2).toFixed(2)} s
- algebra (2 lanes) + bytes, if the bytes overlapped nothing: ${(a2.wall + b.wall).toFixed(2)} s;
  if they overlapped perfectly on 2 cores: ${((one.cpu + b.cpu) / 2).toFixed(2)} s
`;
console.log(text);
console.log(writeResult('opcm-vitb32-floor', text));

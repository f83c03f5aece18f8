/**
 * Engine micro-benchmark: sgemm throughput and SVD latency, native vs portable.
 *   node --import tsx bench/engine-micro.ts [--repeats 3]
 * Portable runs only the smallest shape (it takes seconds there already). Median of the repeats
 * after one warm-up; inputs uniform in [-1, 1).
 */
import { cpus, loadavg } from 'node:os';
import { loadLinalg } from '../src/engine/native.js';
import { NativeEngine } from '../src/engine/native-engine.js';
import { PortableEngine } from '../src/engine/portable.js';
import type { Engine } from '../src/engine/types.js';

const repeatsArg = process.argv.indexOf('--repeats');
const repeats = repeatsArg > 0 ? Number(process.argv[repeatsArg + 1]) : 3;
const shapes: [number, number][] = [
  [768, 768],
  [3072, 768],
  [2048, 2048],
];

function random(len: number, seed: number): Float32Array {
  let x = seed >>> 0 || 1;
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  return a;
}

async function median(runs: number, job: () => Promise<unknown>): Promise<number> {
  await job();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await job();
    times.push(performance.now() - t);
  }
  times.sort((p, q) => p - q);
  return times[times.length >> 1];
}

const engines: Engine[] = [];
const linalg = loadLinalg();
if (linalg.addon) engines.push(new NativeEngine(linalg.addon));
else console.log(`native: skipped (${linalg.error.message})`);
engines.push(new PortableEngine());

console.log(
  `cpus ${cpus().length} (${cpus()[0]?.model ?? '?'}), load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}, BLAS threads ${linalg.addon?.getThreads() ?? '-'}, repeats ${repeats} (median)`,
);
console.log('engine    shape        sgemm ms   GFLOP/s    svd ms');
for (const engine of engines) {
  for (const [m, n] of shapes) {
    if (engine.name === 'portable' && m * n > 768 * 768) continue;
    const runs = engine.name === 'portable' ? 1 : repeats;
    // sgemm: A (m×n) · B (n×n), the product shape of projecting a weight onto a singular basis.
    const a = random(m * n, m + n);
    const b = random(n * n, 7 * n);
    const gemmMs = await median(runs, () => engine.matmul(a, b, m, n, n));
    const gflops = (2 * m * n * n) / (gemmMs * 1e6);
    const svdMs = await median(runs, () => engine.svd(a, m, n));
    console.log(
      `${engine.name.padEnd(9)} ${`${m}×${n}`.padEnd(12)} ${gemmMs.toFixed(1).padStart(8)} ${gflops.toFixed(1).padStart(9)} ${svdMs.toFixed(0).padStart(9)}`,
    );
  }
  engine.close();
}

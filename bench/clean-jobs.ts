import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLinalg } from '../src/engine/native.js';
import { NativeEngine } from '../src/engine/native-engine.js';
import { python, referenceDir, repoRoot } from './lib.js';

/** One linear tensor's step-2 inputs: S_1 = τ1 (SVD'd) and τ2 (cleaned), row-major m×n. */
export interface CleanJob {
  name: string;
  m: number;
  n: number;
  prev: Float32Array;
  tau: Float32Array;
}

/**
 * bench/extract_layer.py, one pass over the models: τ1 and τ2 of each selection (a decoder layer's
 * index, or one tensor's name) into `dir`; per selection, its tensors' name,m,n lines.
 */
export function extractTensors(data: string, selections: string[], dir: string): string[][] {
  const out = execFileSync(python, [join(repoRoot, 'bench', 'extract_layer.py'), data, dir, ...selections], {
    encoding: 'utf8',
    env: { ...process.env, CMERGE_REFERENCE: referenceDir },
  });
  const lines: string[][] = selections.map(() => []);
  for (const l of out.trim().split('\n')) {
    const [index, tensor] = l.split(' ');
    lines[Number(index)].push(tensor);
  }
  return lines;
}

/** The jobs of extractTensors' lines, read from `dir`. */
export function readCleanJobs(lines: string[], dir: string): CleanJob[] {
  const f32 = (p: string) => {
    const b = readFileSync(p);
    return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  };
  return lines.map((l) => {
    const [name, m, n] = l.split(',');
    const at = (k: number) => f32(join(dir, `${name}.tau${k}.f32`));
    return { name, m: Number(m), n: Number(n), prev: at(1), tau: at(2) };
  });
}

/**
 * Every job's OPCM cleaning (engine.opcmClean, α = 0.5) with the native engine on `lanes` lanes
 * (one lane: one BLAS thread), inputs in memory, each from its own copy of τ: wall and CPU seconds.
 */
export async function cleanInLanes(jobs: CleanJob[], lanes: number): Promise<{ wall: number; cpu: number }> {
  const engine = new NativeEngine(loadLinalg().addon!, lanes === 1 ? { threads: 1, jobs: 1 } : {});
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      const tau = j.tau.slice(); // cleaned in place; each run starts from the same τ
      await engine.opcmClean(j.prev, () => tau, j.m, j.n, 0.5);
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
  const wall = (performance.now() - start) / 1000;
  const c = process.cpuUsage(cpu0);
  engine.close();
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

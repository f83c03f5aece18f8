import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { loadLinalg } from '../src/engine/native.js';
import { openModel } from '../src/io/model.js';

/** Shared pieces of the benchmarks: whole-process timing, machine facts, output agreement. */
export const repoRoot = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
export const referenceDir = process.env.CMERGE_REFERENCE ?? join(repoRoot, '..', 'shared', 'reference');
export const python = process.env.CMERGE_PYTHON ?? '/usr/bin/python3';
export const cliPath = join(repoRoot, 'bin', 'cmerge.js');

export interface Timed {
  seconds: number;
  peakRssMiB: number;
  userSeconds: number;
  sysSeconds: number;
  minorFaults: number;
  stdout: string;
}

/** Runs a command under /usr/bin/time: wall seconds, peak RSS, CPU times and page faults of the whole process. */
export function timed(cmd: string, args: string[], cwd = repoRoot, env: NodeJS.ProcessEnv = {}): Timed {
  const r = spawnSync('/usr/bin/time', ['-f', '__TIME__ %e %M %U %S %R', cmd, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    maxBuffer: 256 << 20,
  });
  const m = /__TIME__ ([\d.]+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return {
    seconds: Number(m[1]),
    peakRssMiB: Number(m[2]) / 1024,
    userSeconds: Number(m[3]),
    sysSeconds: Number(m[4]),
    minorFaults: Number(m[5]),
    stdout: r.stdout,
  };
}

/** `node` arguments of one OPCM step as a whole `cmerge merge --json` process. */
export function opcmStepArgs(base: string, state: string, out: string, ckpt: string): string[] {
  return stepArgs('opcm', [], base, state, out, ckpt);
}

/** `node` arguments of one step of `method` (its `--param key=value`s) as a whole `cmerge merge --json` process. */
export function stepArgs(
  method: string,
  params: string[],
  base: string,
  state: string,
  out: string,
  ckpt: string,
): string[] {
  const p = params.flatMap((kv) => ['--param', kv]);
  return [cliPath, 'merge', '--base', base, '--state', state, '--method', method, ...p, '--out', out, '--json', ckpt];
}

/** The 1-, 5- and 15-minute load averages, as the result files record them (the machine is shared). */
export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

export function machine(): Record<string, string> {
  const sh = (c: string) => {
    try {
      return execFileSync('sh', ['-c', c], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  return {
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: sh('. /etc/os-release && echo "$PRETTY_NAME"') + ' / ' + sh('uname -r'),
    node: process.version,
    openblas: sh(
      "dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || dpkg-query -W -f='${Version}' libopenblas0",
    ),
    torch: sh(`${python} -c 'import torch; print(torch.__version__)'`),
    'blas kernels': blasKernels(sh),
    date: new Date().toISOString(),
  };
}

/**
 * The OpenBLAS kernel set cmerge's addon and the peer's torch run in this environment (the benches'
 * children inherit it). They set the products' speed: on an AVX-512 core the AVX2 (Haswell) set
 * runs at ~0.6x (docs/performance.md#blas-kernels), and some machines force it through
 * OPENBLAS_CORETYPE.
 */
function blasKernels(sh: (c: string) => string): string {
  const cmerge = loadLinalg().addon?.blasCore() ?? 'no addon';
  const peer = sh(
    `${python} -c 'import torch, ctypes; f = ctypes.CDLL("libopenblas.so.0").openblas_get_corename; ` +
      `f.restype = ctypes.c_char_p; print(f().decode())'`,
  );
  const env = process.env.OPENBLAS_CORETYPE
    ? `OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE}`
    : 'OPENBLAS_CORETYPE unset';
  return `cmerge ${cmerge}, peer ${peer} (${env})`;
}

/** Largest per-tensor relative Frobenius difference between two models (float tensors). */
export function maxRelDiff(a: string, b: string): { max: number; tensor: string } {
  const x = openModel(a),
    y = openModel(b);
  let max = 0,
    tensor = '';
  try {
    for (const [name, info] of y.tensors) {
      if (!['F32', 'BF16', 'F16', 'F64'].includes(info.dtype)) continue;
      const p = x.readF32(name),
        q = y.readF32(name);
      let d = 0,
        n = 0;
      for (let i = 0; i < q.length; i++) {
        d += (p[i] - q[i]) ** 2;
        n += q[i] ** 2;
      }
      const r = n > 0 ? Math.sqrt(d / n) : Math.sqrt(d);
      if (r > max) [max, tensor] = [r, name];
    }
  } finally {
    x.close();
    y.close();
  }
  return { max, tensor };
}

/** Makes synthetic checkpoints with the reference's synth.py unless they exist. */
export function synth(dir: string, shape: string, tasks: number, dtype: 'F32' | 'BF16'): void {
  if (existsSync(join(dir, `task_${tasks - 1}.safetensors`))) return;
  mkdirSync(dir, { recursive: true });
  execFileSync(python, [join(referenceDir, 'synth.py'), dir, shape, String(tasks), dtype, '0'], {
    stdio: 'inherit',
    cwd: referenceDir,
  });
}

export function writeResult(name: string, text: string): string {
  const dir = join(repoRoot, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.md`);
  writeFileSync(path, text);
  return path;
}

export function machineTable(m: Record<string, string>): string {
  return Object.entries(m)
    .map(([k, v]) => `| ${k} | ${v} |`)
    .join('\n');
}

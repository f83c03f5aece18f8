// Builds libcmerge_fakecuda.so, the CPU stand-in for the CUDA libraries (test/native/fake-cuda),
// so that tests can point the CUDA engine at it with CMERGE_CUDA_LIBS=<path>.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.js';

export const fakeCudaSource = join(repoRoot, 'test', 'native', 'fake-cuda', 'fake_cuda.cc');
/** cuda_api.h: the fake includes it and checks every export's signature against it. */
export const cudaApiHeader = join(repoRoot, 'native', 'src', 'cuda', 'cuda_api.h');
export const fakeCudaOutput = join(repoRoot, 'native', 'build', 'fake-cuda', 'libcmerge_fakecuda.so');

let built: string | undefined;

/**
 * The cuda engine's pinned staging chunk in the tests (CMERGE_CUDA_STAGE_BYTES; 16 MiB by
 * default): small, so that the tests' small tensors take the several-chunk, double-buffered copy
 * paths, whose waits the stand-in checks (it runs stream work only when the host must see it).
 */
export const testStageBytes = '4096';

/** The environment of a process whose cuda engine runs on the stand-in. */
export function fakeCudaEnv(): { CMERGE_CUDA_LIBS: string; CMERGE_CUDA_STAGE_BYTES: string } {
  return { CMERGE_CUDA_LIBS: fakeCudaLibrary(), CMERGE_CUDA_STAGE_BYTES: testStageBytes };
}

/**
 * Points this process's cuda engine (and its children's) at the stand-in, or at the real GPU when
 * CMERGE_TEST_REAL_CUDA=1 (bench/gpu/run.sh); the small staging chunk either way.
 */
export function useTestCuda(): void {
  if (process.env.CMERGE_TEST_REAL_CUDA === '1') process.env.CMERGE_CUDA_STAGE_BYTES = testStageBytes;
  else Object.assign(process.env, fakeCudaEnv());
}

function mtime(path: string): number {
  return statSync(path).mtimeMs;
}

/**
 * The absolute path of libcmerge_fakecuda.so, built on first use (again when fake_cuda.cc or
 * cuda_api.h is newer than the library). Throws with the compiler's output when the build fails
 * (it needs g++, OpenBLAS and LAPACKE: libopenblas-dev, liblapacke-dev).
 */
export function fakeCudaLibrary(): string {
  if (built) return built;
  const stale =
    !existsSync(fakeCudaOutput) || Math.max(mtime(fakeCudaSource), mtime(cudaApiHeader)) > mtime(fakeCudaOutput);
  if (stale) build();
  built = fakeCudaOutput;
  return built;
}

function build(): void {
  const dir = join(fakeCudaOutput, '..');
  mkdirSync(dir, { recursive: true });
  // Test files run in parallel processes: each builds into its own file, then renames it into
  // place, so no process ever loads a half-written library.
  const tmp = `${fakeCudaOutput}.${process.pid}.tmp`;
  const cxx = process.env.CXX || 'g++';
  const args = [
    '-std=c++17',
    '-O2',
    '-shared',
    '-fPIC',
    '-ffp-contract=off', // kernels.cu is compiled with --fmad=false: no fused multiply-add here either
    '-fvisibility=hidden',
    '-fvisibility-inlines-hidden',
    '-Wall',
    '-Wextra',
    '-Wl,-z,defs',
    '-I/usr/include/x86_64-linux-gnu', // Debian's cblas.h
    '-I' + join(repoRoot, 'native', 'src', 'cuda'),
    '-o',
    tmp,
    fakeCudaSource,
    '-lopenblas',
    '-llapacke',
  ];
  const r = spawnSync(cxx, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    const why = r.error ? String(r.error) : `${r.stdout ?? ''}${r.stderr ?? ''}`;
    throw new Error(`building the fake CUDA library failed: ${cxx} ${args.join(' ')}\n${why}`);
  }
  renameSync(tmp, fakeCudaOutput);
}

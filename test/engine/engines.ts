import { probeCuda } from '../../src/engine/cuda.js';
import { CudaEngine } from '../../src/engine/cuda-engine.js';
import { loadLinalg } from '../../src/engine/native.js';
import { NativeEngine } from '../../src/engine/native-engine.js';
import { PortableEngine } from '../../src/engine/portable.js';
import type { Engine, EngineName } from '../../src/engine/types.js';
import { useTestCuda } from '../helpers/fake-cuda.js';

export interface EngineCase {
  name: EngineName;
  /** a fresh engine (with EngineOptions.stop when given); only call when skip is false */
  make: (stop?: Int32Array) => Engine;
  /** why this engine's tests are skipped, shown by the test runner */
  skip: string | false;
}

const linalg = loadLinalg();

/**
 * The cuda engine runs on a real GPU when CMERGE_TEST_REAL_CUDA=1 (bench/gpu/run.sh), else on
 * the CPU stand-in of the CUDA libraries (test/native/fake-cuda): the engine's host code, the
 * addon and its arithmetic are then checked here and in CI, the kernels by their CPU twins.
 */
useTestCuda();
export const cudaProbe = probeCuda(0);
export const cudaKind = process.env.CMERGE_TEST_REAL_CUDA === '1' ? 'real GPU' : 'CPU stand-in';

/** CMERGE_TEST_ENGINES=cuda (comma list) runs only those (the GPU machine has no OpenBLAS). */
const selected = process.env.CMERGE_TEST_ENGINES?.split(',').map((s) => s.trim());

/** Every engine; native is skipped only when its addon is absent, cuda when it cannot start. */
const allCases: EngineCase[] = [
  { name: 'portable', make: (stop) => new PortableEngine(stop), skip: false },
  {
    name: 'native',
    make: (stop) => new NativeEngine(linalg.addon!, { stop }),
    skip: linalg.addon ? false : `native addon absent: ${linalg.error?.message}`,
  },
  {
    name: 'cuda',
    make: (stop) => {
      if (!cudaProbe.ok) throw new Error(cudaProbe.reason);
      return new CudaEngine(cudaProbe.addon, cudaProbe, { stop }, () => new PortableEngine(stop));
    },
    skip: cudaProbe.ok ? false : `cuda engine unavailable (${cudaKind}): ${cudaProbe.reason}`,
  },
];

export const engineCases: EngineCase[] = allCases.map((c) =>
  selected && !selected.includes(c.name) ? { ...c, skip: 'not in CMERGE_TEST_ENGINES' } : c,
);

import { loadLinalg } from '../../src/engine/native.js';
import { NativeEngine } from '../../src/engine/native-engine.js';
import { PortableEngine } from '../../src/engine/portable.js';
import type { Engine, EngineName } from '../../src/engine/types.js';

export interface EngineCase {
  name: EngineName;
  /** a fresh engine; only call when skip is false */
  make: () => Engine;
  /** why this engine's tests are skipped, shown by the test runner */
  skip: string | false;
}

const linalg = loadLinalg();

/** Both engines; native is skipped (with the load error as reason) only when its addon is absent. */
export const engineCases: EngineCase[] = [
  { name: 'portable', make: () => new PortableEngine(), skip: false },
  {
    name: 'native',
    make: () => new NativeEngine(linalg.addon!),
    skip: linalg.addon ? false : `native addon absent: ${linalg.error?.message}`,
  },
];

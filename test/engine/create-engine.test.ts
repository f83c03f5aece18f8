import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { probeCuda } from '../../src/engine/cuda.js';
import { createEngine } from '../../src/engine/index.js';
import { loadLinalg, loadNativeAddon } from '../../src/engine/native.js';

const linalg = loadLinalg();
// what this process's cuda engine finds: a real GPU, or none (CMERGE_CUDA_LIBS is not set here)
const cuda = probeCuda(0);

test('portable is always available', () => {
  const engine = createEngine('portable');
  assert.equal(engine.name, 'portable');
  engine.close();
});

test('auto picks cuda when a GPU answers, else native exactly when the addon loaded', () => {
  const engine = createEngine('auto');
  assert.equal(engine.name, cuda.ok ? 'cuda' : linalg.addon ? 'native' : 'portable');
  engine.close();
});

test(
  'cuda without a usable GPU throws one line naming what is missing',
  { skip: cuda.ok ? 'a GPU answers here' : false },
  () => {
    assert.throws(
      () => createEngine('cuda'),
      (e: Error) =>
        e.name === 'EngineUnavailableError' &&
        /^cuda engine unavailable: \S/.test(e.message) &&
        !e.message.includes('\n'),
    );
  },
);

test(
  'native with threads applies the BLAS thread count',
  { skip: linalg.addon ? false : `native addon absent: ${linalg.error?.message}` },
  () => {
    const before = linalg.addon!.getThreads();
    try {
      const engine = createEngine('native', { threads: 1 });
      assert.equal(engine.name, 'native');
      assert.equal(linalg.addon!.getThreads(), 1);
      engine.close();
    } finally {
      linalg.addon!.setThreads(before);
    }
  },
);

test(
  'native names the OpenBLAS kernel set that runs, in its record and its announce line',
  {
    skip: !linalg.addon
      ? `native addon absent: ${linalg.error?.message}`
      : process.arch !== 'x64'
        ? 'kernel set names are x86-64 ones'
        : false,
  },
  () => {
    // OpenBLAS reads OPENBLAS_CORETYPE once, when it loads: a fresh process per setting
    const index = fileURLToPath(new URL('../../src/engine/index.js', import.meta.url));
    const script = `import { createEngine } from ${JSON.stringify(index)};
      const lines = [];
      const engine = createEngine('native', { announce: (line) => lines.push(line) });
      console.log(JSON.stringify({ info: engine.info(), lines }));`;
    const run = (coretype: string | undefined) => {
      const env = { ...process.env };
      if (coretype) env.OPENBLAS_CORETYPE = coretype;
      else delete env.OPENBLAS_CORETYPE;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
      return JSON.parse(out) as { info: { name: string; blas_core?: string }; lines: string[] };
    };
    // Prescott: a set every x86-64 OpenBLAS build has, and nothing runs on it here
    const forced = run('Prescott');
    assert.deepEqual(forced.info, { name: 'native', blas_core: 'Prescott' });
    assert.match(forced.lines[0], /, Prescott kernels \(OPENBLAS_CORETYPE\)\), as configured$/);
    const detected = run(undefined);
    assert.match(detected.info.blas_core ?? '', /^\w+$/);
    assert.ok(detected.lines[0].includes(`${detected.info.blas_core} kernels (OpenBLAS's CPU detection)`));
  },
);

test(
  'native when the addon is absent throws, saying why',
  { skip: linalg.addon ? 'native addon present on this machine' : false },
  () => {
    assert.throws(() => createEngine('native'), /native engine unavailable: .*cmerge_linalg/);
  },
);

test('a missing addon loads as null with a reason, never throws', () => {
  const load = loadNativeAddon('cmerge_does_not_exist');
  assert.equal(load.addon, null);
  assert.match(load.error!.message, /cmerge_does_not_exist\.node is not built/);
});

test('an unknown choice is an error', () => {
  assert.throws(() => createEngine('gpu' as 'auto'), /unknown engine "gpu"/);
});

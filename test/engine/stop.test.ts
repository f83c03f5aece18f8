import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { EngineStoppedError } from '../../src/engine/errors.js';
import type { DopOptions } from '../../src/engine/types.js';
import { engineCases } from './engines.js';
import { randomF32 } from './reference.js';

// A merge being abandoned sets its engine's stop flag (EngineOptions.stop): DOP's loop over one
// tensor must end at its next step, not after num_steps. 10⁷ steps would run for hours.
for (const c of engineCases)
  test(`${c.name}: the stop flag ends DOP's loop inside a tensor`, { skip: c.skip }, async () => {
    const stop = new Int32Array(new SharedArrayBuffer(4));
    const engine = c.make(stop);
    const [m, n] = [48, 32];
    const base = randomF32(m * n, 1);
    const [na, nb] = [randomF32(m * n, 2), randomF32(m * n, 3)];
    const wa = base.map((x, i) => x + 0.01 * na[i]!);
    const wb = base.map((x, i) => x + 0.01 * nb[i]!);
    const o: DopOptions = {
      lr: 1e-4,
      num_steps: 10_000_000,
      mgda: true,
      ema: true,
      ema_beta: 0.999,
      alpha: 0.8,
      svd_epsilon: 0.99,
      svd_proj_space: 'uv',
    };
    const started = Date.now();
    // from another thread, as the daemon does (the portable loop never yields to this one's timers)
    const setter = new Worker(
      'const { workerData } = require("node:worker_threads"); setTimeout(() => Atomics.store(new Int32Array(workerData), 0, 1), 300);',
      { eval: true, workerData: stop.buffer },
    );
    const setterExit = once(setter, 'exit');
    await assert.rejects(engine.dopOptimize(base, wa, wb, m, n, o), EngineStoppedError);
    const ms = Date.now() - started;
    assert.ok(ms < 10_000, `stopped ${ms} ms after the start (the flag was set at 300 ms)`);
    await setterExit;
    engine.close();
  });

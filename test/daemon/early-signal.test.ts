import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath } from '../helpers/paths.js';
import { sleep, workspace, writeConfig } from './support.js';

/** ms from spawn to the first output of `node args` (and the child's exit). */
async function firstOutputMs(args: string[]): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const first = new Promise<number>((r) => {
    child.stdout.once('data', () => r(performance.now() - t0));
    child.stderr.once('data', () => r(performance.now() - t0));
  });
  const ms = await first;
  await new Promise((r) => child.on('exit', r));
  return ms;
}

/**
 * Issue 8, bug 3: a SIGTERM while `cmerge daemon` is still loading its modules (~0.4 s) killed it
 * with status 143. The window is measured on this machine: from a bare node's first output (node
 * itself is up) to the daemon's first output (its modules are loaded); the signal is sent in the
 * middle of it, and must still end in a clean stop, exit 0.
 */
test('SIGTERM while the daemon is still loading: clean exit 0', async () => {
  const ws = workspace('cmerge-early-signal-');
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [ws.pipeline]);
  const boot = Math.min(
    await firstOutputMs(['-e', 'process.stdout.write("up")']),
    await firstOutputMs(['-e', 'process.stdout.write("up")']),
  );
  const loaded = await firstOutputMs([cliPath, 'daemon', '--config', join(ws.work, 'missing.yaml')]);
  assert.ok(
    loaded - boot > 50,
    `window too short to test: node up at ${boot.toFixed(0)} ms, daemon loaded at ${loaded.toFixed(0)} ms`,
  );
  const child = spawn(process.execPath, [cliPath, 'daemon', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CMERGE_LOG_FORMAT: 'json' },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  await sleep((boot + loaded) / 2);
  const outputBeforeSignal = out;
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(outputBeforeSignal, '', 'the signal came before the daemon had loaded and logged anything');
  assert.equal(signal, null, `killed by ${signal}: ${out}`);
  assert.equal(code, 0, out);
  assert.match(out, /SIGTERM: stopping/);
});

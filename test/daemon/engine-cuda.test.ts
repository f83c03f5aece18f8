import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { cmerge } from '../helpers/cli.js';
import { fakeCudaEnv } from '../helpers/fake-cuda.js';
import { DaemonProc, dropFile, history, waitForVersion, workspace, writeConfig } from './support.js';

/**
 * The daemon on the cuda engine, with the CUDA libraries replaced by the CPU stand-in
 * (test/native/fake-cuda, CMERGE_CUDA_LIBS): the engine, its device and its figures are
 * recorded; a lost device (a sticky CUDA error, FAKE_CUDA_STICKY_AFTER) makes the daemon log it
 * and exit non-zero with the checkpoint still queued, and the restarted daemon merges it.
 */
function daemon(config: string, env: Record<string, string>): DaemonProc {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return new DaemonProc(config);
  } finally {
    process.env = saved;
  }
}

test('engine: cuda records its device and figures; a lost device exits non-zero, the checkpoint queued and redone after the restart', async (t) => {
  const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-cuda-');
  const libs = fakeCudaEnv();
  const config = writeConfig(
    join(work, 'cmerge.yaml'),
    state,
    [{ ...pipeline, engine: { name: 'cuda', max_memory: '1GiB' } }],
    { metrics_port: 0 },
  );
  const db = () => new Database(join(state, 'cmerge.sqlite'), { readonly: true });

  // 1. a merge on the (fake) GPU: engine info with its device and versions, GPU figures
  let d = daemon(config, libs);
  try {
    await d.ready();
    dropFile(models.tasks[0]!, drop);
    await waitForVersion(repo, 'clip', 1, 30_000, d);
    const c = db();
    const m = c
      .prepare(`SELECT engine, engine_info, gpu_seconds, peak_device_bytes, cpu_fallbacks FROM merges WHERE step = 1`)
      .get() as Record<string, unknown>;
    const v = c.prepare('SELECT engine FROM versions WHERE number = 1').get() as { engine: string };
    c.close();
    const info = JSON.parse(m.engine_info as string) as {
      name: string;
      device: string;
      versions: Record<string, string>;
    };
    t.diagnostic(JSON.stringify(info));
    assert.equal(m.engine, 'cuda');
    assert.equal(info.name, 'cuda');
    assert.match(info.device, /^0: /);
    assert.ok(Object.keys(info.versions).length > 0, 'library versions');
    assert.deepEqual(JSON.parse(v.engine), info, 'the version keeps its engine');
    assert.equal(typeof m.gpu_seconds, 'number');
    assert.equal(typeof m.peak_device_bytes, 'number');
    assert.equal(m.cpu_fallbacks, 0);
    const url = /^metrics on (http:\S+)/.exec((await d.waitFor(/^metrics on http/)).message)![1]!;
    const metrics = await (await fetch(url)).text();
    const line = `cmerge_engine_info{pipeline="clip",engine="cuda",device="${info.device}"} 1`;
    assert.ok(metrics.split('\n').includes(line), `${line} in /metrics`);
    const st = cmerge(['status', '--config', config]);
    assert.match(
      st.stdout,
      /^clip: engine cuda on 0: .*\(last merge, step 1: GPU .*, peak device memory .*\), configured cuda$/m,
    );
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());

    // 2. the device is lost at the next merge's first kernel: logged at error level, exit non-zero
    d = daemon(config, { ...libs, FAKE_CUDA_STICKY_AFTER: '1' });
    await d.ready();
    dropFile(models.tasks[1]!, drop);
    const exit = await d.exited;
    assert.notEqual(exit.code, 0, d.tail());
    assert.ok(
      d.lines.some((l) => l.level === 'error' && /engine failure/.test(l.message)),
      d.tail(),
    );
    assert.ok(!existsSync(join(repo, 'clip', '2')), 'nothing published');
    const c2 = db();
    const rows = c2
      .prepare(
        `SELECT m.step, m.status, m.error, c.status AS checkpoint FROM merges m JOIN checkpoints c ON c.id = m.checkpoint_id WHERE m.step = 2`,
      )
      .all() as Record<string, unknown>[];
    c2.close();
    assert.equal(rows.length, 1);
    assert.deepEqual([rows[0]!.status, rows[0]!.checkpoint], ['interrupted', 'queued']);
    assert.ok(String(rows[0]!.error).length > 0, 'the error is recorded');

    // 3. restarted (systemd would), the queued checkpoint is merged
    d = daemon(config, libs);
    await d.ready();
    await waitForVersion(repo, 'clip', 2, 30_000, d);
    assert.deepEqual(
      history(config).map((h) => [h.step, h.status]),
      [
        [1, 'committed'],
        [2, 'interrupted'],
        [2, 'committed'],
      ],
    );
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});

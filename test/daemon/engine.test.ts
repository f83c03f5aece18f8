import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { loadLinalg } from '../../src/engine/native.js';
import { cmerge } from '../helpers/cli.js';
import { DaemonProc, dropFile, sleep, waitForVersion, workspace, writeConfig, type LogLine } from './support.js';

/**
 * The daemon's engine on this machine, which has no GPU: `engine: cuda` (either form) refuses to
 * start, and a reload to it is refused; `engine: auto` runs on a CPU engine and records it in
 * SQLite, /metrics, status, history and show.
 */
const errors = (d: DaemonProc): LogLine[] => d.lines.filter((l) => l.level === 'error');

/** The engine_info a merge on CPU engine `name` records: native adds the OpenBLAS kernel set, which
 * the daemon, inheriting this process's environment, shares with this process. */
const cpuEngineInfo = (name: string): { name: string; blas_core?: string } =>
  name === 'native' ? { name, blas_core: loadLinalg().addon!.blasCore() } : { name };

async function metricsText(d: DaemonProc, from = 0): Promise<string> {
  const url = /^metrics on (http:\S+)/.exec((await d.waitFor(/^metrics on http/, 30_000, from)).message)![1]!;
  return (await fetch(url)).text();
}

describe('daemon engine', () => {
  for (const [form, engine, env] of [
    ['string', 'cuda', {}],
    [
      'object',
      { name: 'cuda', device: 0, max_memory: '8GiB', tf32: true },
      { CMERGE_CUDA_LIBS: '/nonexistent/libcuda.so.1' },
    ],
  ] as const) {
    test(`engine: cuda (${form} form) without a GPU: refuses to start with one line, writes nothing`, async () => {
      const { work, state, pipeline } = workspace('cmerge-daemon-nocuda-');
      const config = writeConfig(join(work, 'cmerge.yaml'), state, [{ ...pipeline, engine }]);
      const saved = { ...process.env };
      Object.assign(process.env, env);
      const d = new DaemonProc(config);
      process.env = saved;
      try {
        const exit = await d.exited;
        assert.notEqual(exit.code, 0, d.tail());
        const errs = errors(d);
        assert.equal(errs.length, 1, `one error line:\n${d.tail()}`);
        assert.match(errs[0]!.message, /failed to start: pipeline clip: .*cuda/i);
        assert.ok(errs[0]!.message.split(/cuda/i).at(-1)!.trim().length > 5, `a reason: ${errs[0]!.message}`);
        assert.equal(d.messages(/^cmerge daemon ready/).length, 0);
        assert.ok(!existsSync(join(state, 'cmerge.sqlite')), 'no database created');
      } finally {
        await d.kill();
      }
    });
  }

  test('the engine line is logged once at start, not per merge, and again when a reload changes the engine', async () => {
    const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-engine-line-', 3);
    const config = writeConfig(join(work, 'cmerge.yaml'), state, [{ ...pipeline, engine: 'auto' }]);
    const engineLines = (d: DaemonProc) => d.messages(/^engine: /);
    const d = new DaemonProc(config);
    try {
      await d.ready();
      dropFile(models.tasks[0]!, drop);
      await waitForVersion(repo, 'clip', 1, 30_000, d);
      dropFile(models.tasks[1]!, drop);
      await waitForVersion(repo, 'clip', 2, 30_000, d);
      await d.waitFor(/^published version 2:/);
      assert.equal(engineLines(d).length, 1, `one engine line over 2 merges:\n${engineLines(d).join('\n')}`);
      const first = engineLines(d)[0]!;
      assert.ok(
        d.lines.findIndex((l) => l.message === first) <
          d.lines.findIndex((l) => /^cmerge daemon ready/.test(l.message)),
        'logged at start',
      );

      // a reload to another engine says so, once; its merges do not repeat it
      writeConfig(config, state, [{ ...pipeline, engine: 'portable' }]);
      d.child.kill('SIGHUP');
      await d.waitFor(/^configuration reloaded/, 30_000);
      dropFile(models.tasks[2]!, drop);
      await waitForVersion(repo, 'clip', 3, 60_000, d);
      await d.waitFor(/^published version 3:/);
      assert.deepEqual(engineLines(d), [first, 'engine: portable (TypeScript), as configured']);

      // every merge's engine is still recorded in SQLite
      const db = new Database(join(state, 'cmerge.sqlite'), { readonly: true });
      try {
        const rows = db
          .prepare(`SELECT engine, engine_info FROM merges WHERE status = 'committed' ORDER BY step`)
          .all() as {
          engine: string;
          engine_info: string;
        }[];
        assert.equal(rows.length, 3);
        assert.equal(rows[2]!.engine, 'portable');
        assert.deepEqual(JSON.parse(rows[2]!.engine_info), { name: 'portable' });
        for (const r of rows.slice(0, 2)) assert.deepEqual(JSON.parse(r.engine_info), cpuEngineInfo(r.engine));
      } finally {
        db.close();
      }
      assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
    } finally {
      await d.kill();
    }
  });

  test('engine: auto runs on a CPU engine, recorded in SQLite, /metrics, status, history and show; a reload to cuda is refused', async (t) => {
    const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-auto-');
    const config = writeConfig(join(work, 'cmerge.yaml'), state, [{ ...pipeline, engine: 'auto' }], {
      metrics_port: 0,
    });
    let d = new DaemonProc(config);
    try {
      await d.ready();
      dropFile(models.tasks[0]!, drop);
      await waitForVersion(repo, 'clip', 1, 30_000, d);

      let name = '';
      let info: { name: string; blas_core?: string } = { name };
      const db = new Database(join(state, 'cmerge.sqlite'), { readonly: true });
      try {
        const m = db
          .prepare(
            `SELECT engine, engine_info, gpu_seconds, peak_device_bytes, cpu_fallbacks FROM merges WHERE status = 'committed'`,
          )
          .get() as Record<string, unknown>;
        name = m.engine as string;
        t.diagnostic(`auto picked ${name}`);
        assert.ok(name === 'native' || name === 'portable', name);
        info = cpuEngineInfo(name);
        assert.deepEqual(JSON.parse(m.engine_info as string), info);
        assert.deepEqual([m.gpu_seconds, m.peak_device_bytes, m.cpu_fallbacks], [null, null, null]);
        const v = db.prepare('SELECT engine FROM versions WHERE number = 1').get() as { engine: string };
        assert.deepEqual(JSON.parse(v.engine), info);
      } finally {
        db.close();
      }

      const line = `cmerge_engine_info{pipeline="clip",engine="${name}",device=""} 1`;
      const metrics = await metricsText(d);
      assert.ok(
        metrics.split('\n').includes(line),
        `${line} in /metrics:\n${metrics
          .split('\n')
          .filter((l) => l.startsWith('cmerge_engine'))
          .join('\n')}`,
      );

      const st = cmerge(['status', '--config', config, '--json']);
      assert.equal(st.status, 0, st.stderr);
      assert.deepEqual(JSON.parse(st.stdout).pipelines[0].engine, { step: 1, info, gpu: null });
      const shownName = info.blas_core ? `${name}, ${info.blas_core} kernels` : name;
      const text = cmerge(['status', '--config', config]);
      assert.match(
        text.stdout,
        new RegExp(`^clip: engine ${shownName} \\(last merge, step 1\\), configured auto$`, 'm'),
      );
      const h = cmerge(['history', '--config', config, '--json']);
      assert.deepEqual(
        JSON.parse(h.stdout).history.map((e: { engine_info: unknown; gpu: unknown }) => [e.engine_info, e.gpu]),
        [[info, null]],
      );
      const shown = cmerge(['show', '--config', config, 'clip', '1']);
      assert.match(shown.stdout, new RegExp(`^  engine      ${shownName}$`, 'm'));
      assert.deepEqual(JSON.parse(cmerge(['show', '--config', config, 'clip', '1', '--json']).stdout).engine, info);

      // SIGHUP to engine: cuda is refused like a base that does not open; the old config runs on
      writeConfig(config, state, [{ ...pipeline, engine: { name: 'cuda', max_memory: '1GiB' } }], { metrics_port: 0 });
      const from = d.lines.length;
      d.child.kill('SIGHUP');
      const refused = await d.waitFor(/^reload refused/, 10_000, from);
      t.diagnostic(refused.message);
      assert.match(refused.message, /pipeline clip: .*cuda/i);
      await sleep(300);
      assert.ok(d.alive);
      dropFile(models.tasks[1]!, drop);
      await waitForVersion(repo, 'clip', 2, 30_000, d);
      assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());

      // after a restart, /metrics names the last merge's engine before any new merge
      writeConfig(config, state, [{ ...pipeline, engine: 'auto' }], { metrics_port: 0 });
      d = new DaemonProc(config);
      await d.ready();
      assert.ok((await metricsText(d)).split('\n').includes(line), 'engine gauge restored from SQLite');
      assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
    } finally {
      await d.kill();
    }
  });
});

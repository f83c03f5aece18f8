/**
 * The HTTP API of a real `cmerge daemon` process (issue 11), over real TCP with fetch: every GET
 * route's JSON equals the CLI's `--json` output for the same data, the report page, 404s,
 * mutations refused without the token with nothing changed, bodies checked by schema, the token
 * file and the socket's modes, and the event stream announcing a published version. The
 * operations themselves (rollback, pin... succeeding) are api-operations.test.ts.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import { call, EventReader, startWithApi } from './api-support.js';
import { currentVersion, dropFile, waitForVersion } from './support.js';

function cliJson(args: string[]): unknown {
  const r = cmerge(args);
  assert.equal(r.status, 0, `cmerge ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('daemon HTTP API', () => {
  let w: Awaited<ReturnType<typeof startWithApi>>;
  const json = (...args: string[]) => cliJson([...args, '--config', w.config, '--json']);

  before(async () => {
    w = await startWithApi('cmerge-api-');
    for (let i = 0; i < 2; i++) {
      dropFile(w.models.tasks[i]!, w.drop);
      await waitForVersion(w.repo, 'clip', i + 1, 30_000, w.d);
    }
  });
  after(async () => {
    await w.d.stop();
  });

  test('the token file is created 0600 (64 hex digits), the socket in state_dir is 0600', () => {
    assert.match(w.token, /^[0-9a-f]{64}$/);
    assert.equal(statSync(join(w.state, 'api-token')).mode & 0o777, 0o600);
    const sock = statSync(join(w.state, 'cmerge.sock'));
    assert.ok(sock.isSocket());
    assert.equal(sock.mode & 0o777, 0o600);
  });

  test("GET routes' JSON equals the CLI's --json output", async () => {
    const status = await call(w.base, 'GET', '/v1/pipelines');
    assert.equal(status.status, 200);
    assert.deepEqual(status.json, json('status'));
    const history = await call(w.base, 'GET', '/v1/pipelines/clip/history');
    assert.equal(history.status, 200);
    assert.deepEqual(history.json, json('history', '--pipeline', 'clip'));
    assert.equal((history.json as { history: unknown[] }).history.length, 2);
    for (const n of [1, 2]) {
      const shown = await call(w.base, 'GET', `/v1/pipelines/clip/versions/${n}`);
      assert.equal(shown.status, 200);
      assert.deepEqual(shown.json, json('show', 'clip', String(n)));
    }
    const health = await call(w.base, 'GET', '/healthz');
    assert.deepEqual([health.status, health.json], [200, { status: 'ok' }]);
  });

  test('GET /report/{p}: the HTML report', async () => {
    const res = await call(w.base, 'GET', '/report/clip');
    assert.equal(res.status, 200, res.text.slice(0, 500));
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.text, /<html/i);
    assert.match(res.text, /clip/);
  });

  test('unknown pipeline or version: 404 with a JSON error', async () => {
    for (const path of [
      '/v1/pipelines/nope/history',
      '/v1/pipelines/nope/versions/1',
      '/v1/pipelines/clip/versions/99',
      '/report/nope',
    ]) {
      const res = await call(w.base, 'GET', path);
      assert.equal(res.status, 404, path);
      assert.equal(typeof (res.json as { error: unknown }).error, 'string');
    }
    const res = await call(w.base, 'POST', '/v1/pipelines/nope/rollback', { token: w.token, body: { version: 1 } });
    assert.deepEqual([res.status, res.json], [404, { error: 'unknown pipeline "nope"' }]);
  });

  test('mutations without the token or with a wrong one: 401, and nothing changed', async () => {
    const before = { status: json('status'), history: json('history'), pinned: json('show', 'clip', '1') };
    const mutations: [string, string, unknown][] = [
      ['POST', '/v1/pipelines/clip/rollback', { version: 1 }],
      ['POST', '/v1/pipelines/clip/revert', { checkpoint: basename(w.models.tasks[0]!) }],
      ['POST', '/v1/pipelines/clip/pause', undefined],
      ['POST', '/v1/pipelines/clip/resume', undefined],
      ['POST', '/v1/pipelines/clip/versions/1/pin', undefined],
      ['DELETE', '/v1/pipelines/clip/versions/1/pin', undefined],
    ];
    for (const [method, path, body] of mutations) {
      for (const token of [undefined, 'wrong', w.token.slice(0, -1)]) {
        const res = await call(w.base, method, path, { token, body });
        assert.equal(res.status, 401, `${method} ${path} token=${token}`);
        assert.equal(typeof (res.json as { error: unknown }).error, 'string');
      }
    }
    assert.deepEqual({ status: json('status'), history: json('history'), pinned: json('show', 'clip', '1') }, before);
    assert.equal(currentVersion(w.repo, 'clip'), 2);
  });

  test('bad bodies: 400 naming the field, nothing changed', async () => {
    const before = json('status');
    const cases: [string, unknown, RegExp][] = [
      ['rollback', { version: 0 }, /^body\.version: /],
      ['rollback', { version: '1' }, /^body\.version: must be integer$/],
      ['rollback', { version: 1, extra: 1 }, /^body\.extra: unknown field$/],
      ['rollback', {}, /^body\.version: required$/],
      ['revert', { checkpoint: '' }, /^body\.checkpoint: /],
      ['revert', {}, /^body\.checkpoint: required$/],
    ];
    for (const [route, body, message] of cases) {
      const res = await call(w.base, 'POST', `/v1/pipelines/clip/${route}`, { token: w.token, body });
      assert.equal(res.status, 400, `${route} ${JSON.stringify(body)}: ${res.text}`);
      assert.match((res.json as { error: string }).error, message);
    }
    assert.deepEqual(json('status'), before);
  });

  // needs the runner to emit version_published on the daemon's event bus
  test('the event stream announces the version a dropped checkpoint becomes', async () => {
    const events = await EventReader.open(`${w.base}/v1/events?pipeline=clip`);
    try {
      dropFile(w.models.tasks[2]!, w.drop);
      await waitForVersion(w.repo, 'clip', 3, 30_000, w.d);
      const published = await events.next('version_published', 10_000);
      assert.equal(published.data.pipeline, 'clip');
      assert.equal(published.data.version, 3);
      assert.equal(published.data.parent, 2);
      assert.ok(events.messages.some((m) => m.event === 'merge_started'));
    } finally {
      events.close();
    }
  });
});

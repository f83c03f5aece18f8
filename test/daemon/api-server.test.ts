/**
 * The API layer on its own (src/daemon/api): startApi in this process with a real store, a real
 * event bus and a recording Operations, over real TCP and a real unix socket. Authentication,
 * schemas, error mapping, the event stream and the socket's life; the routes' data and the real
 * operations are test/daemon/api.test.ts and api-operations.test.ts, against a running daemon.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import winston from 'winston';
import { callDaemon, DaemonError, DaemonNotRunning } from '../../src/cli/daemon-client.js';
import { parseConfig } from '../../src/config/index.js';
import { startApi, type ApiDeps, type ApiHandle } from '../../src/daemon/api/server.js';
import { DaemonEvents } from '../../src/daemon/events.js';
import { loadDaemonConfig } from '../../src/daemon/preflight.js';
import {
  OperationError,
  type OperationKind,
  type OperationResult,
  type Operations,
} from '../../src/daemon/operations/types.js';
import { openStore, type Store } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';
import { call, EventReader, getWithHost } from './api-support.js';
import { workspace, writeConfig } from './support.js';

/** Records each call; answers with a result, or throws `fail` when set. */
class RecordingOperations implements Operations {
  calls: unknown[][] = [];
  fail: OperationError | null = null;
  private async op(operation: OperationKind, pipeline: string, ...args: unknown[]): Promise<OperationResult> {
    this.calls.push([operation, pipeline, ...args]);
    if (this.fail) throw this.fail;
    return { pipeline, operation, current_version: 1, version: 1, detail: `${operation} done` };
  }
  rollback = (p: string, v: number, o?: object) => this.op('rollback', p, v, o);
  revert = (p: string, c: string, o?: object) => this.op('revert', p, c, o);
  pin = (p: string, v: number) => this.op('pin', p, v);
  unpin = (p: string, v: number) => this.op('unpin', p, v);
  pause = (p: string, reason?: string) => this.op('pause', p, reason);
  resume = (p: string) => this.op('resume', p);
  requeue = (p: string, c: string) => this.op('requeue', p, c);
  dequeue = (p: string, c: string) => this.op('dequeue', p, c);
}

function memoryLog() {
  const lines: { level: string; message: string }[] = [];
  const stream = new Writable({
    objectMode: true,
    write(info: { level: string; message: string }, _enc, done) {
      lines.push({ level: info.level, message: info.message });
      done();
    },
  });
  return {
    lines,
    log: winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] }),
  };
}

interface Rig {
  dir: string;
  store: Store;
  ops: RecordingOperations;
  events: DaemonEvents;
  lines: { level: string; message: string }[];
  deps: ApiDeps;
}

function rig(api?: { host?: string; token_file?: string }): Rig {
  const dir = tempDir('cmerge-api-server-');
  const store = openStore(join(dir, 'cmerge.sqlite'));
  const ops = new RecordingOperations();
  const events = new DaemonEvents();
  const { lines, log } = memoryLog();
  const deps: ApiDeps = {
    store,
    operations: ops,
    events,
    log,
    stateDir: dir,
    pipelines: () => ['clip'],
    heartbeatMs: 100,
    ...(api && {
      api: { port: 0, host: api.host ?? '127.0.0.1', token_file: api.token_file ?? join(dir, 'api-token') },
    }),
  };
  return { dir, store, ops, events, lines, deps };
}

describe('API on loopback', () => {
  let r: Rig;
  let api: ApiHandle;
  let base: string;
  let token: string;
  before(async () => {
    r = rig({});
    api = await startApi(r.deps);
    base = `http://127.0.0.1:${api.port}`;
    token = readFileSync(join(r.dir, 'api-token'), 'utf8').trim();
  });
  after(async () => {
    await api.close();
    r.store.close();
  });

  test('the token file is created 0600 with 32 random bytes in hex; the socket is 0600', () => {
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal(statSync(join(r.dir, 'api-token')).mode & 0o777, 0o600);
    assert.equal(api.socketPath, join(r.dir, 'cmerge.sock'));
    const st = statSync(api.socketPath!);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(r.lines.some((l) => /^api on http:\/\/127\.0\.0\.1:\d+ \(mutations need/.test(l.message)));
  });

  test('GETs are open on loopback', async () => {
    const health = await call(base, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });
    const status = await call(base, 'GET', '/v1/pipelines');
    assert.equal(status.status, 200);
    assert.equal((status.json as { pipelines: { name: string }[] }).pipelines[0]!.name, 'clip');
  });

  test('GET /report/{p}: an HTML page (a configured pipeline with nothing recorded yet)', async () => {
    const res = await call(base, 'GET', '/report/clip');
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.text, /<html/i);
  });

  test('mutations without, with a malformed or with a wrong token: 401, and no operation runs', async () => {
    const mutations: [string, string, unknown][] = [
      ['POST', '/v1/pipelines/clip/rollback', { version: 1 }],
      ['POST', '/v1/pipelines/clip/revert', { checkpoint: 'a' }],
      ['POST', '/v1/pipelines/clip/pause', undefined],
      ['POST', '/v1/pipelines/clip/resume', undefined],
      ['POST', '/v1/pipelines/clip/versions/1/pin', undefined],
      ['DELETE', '/v1/pipelines/clip/versions/1/pin', undefined],
    ];
    const auths: [Record<string, string>, RegExp][] = [
      [{}, /^missing Authorization/],
      [{ authorization: token }, /^malformed/],
      [{ authorization: `Basic ${token}` }, /^malformed/],
      [{ authorization: 'Bearer ' + 'f'.repeat(64) }, /^wrong token$/],
      [{ authorization: `Bearer ${token}x` }, /^wrong token$/],
      [{ authorization: 'Bearer x' }, /^wrong token$/],
    ];
    for (const [method, path, body] of mutations) {
      for (const [headers, message] of auths) {
        const res = await call(base, method, path, { body, headers });
        assert.equal(res.status, 401, `${method} ${path} ${JSON.stringify(headers)}`);
        assert.match((res.json as { error: string }).error, message);
        assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      }
    }
    assert.deepEqual(r.ops.calls, []);
  });

  test('with the token, each mutation calls its operation with the body and path values', async () => {
    r.ops.calls = [];
    const ok = async (method: string, path: string, body?: unknown) => {
      const res = await call(base, method, path, { token, body });
      assert.equal(res.status, 200, `${method} ${path}: ${res.text}`);
      return res.json as OperationResult;
    };
    assert.equal((await ok('POST', '/v1/pipelines/clip/rollback', { version: 2 })).operation, 'rollback');
    await ok('POST', '/v1/pipelines/clip/rollback', { version: 3, any_engine: true });
    await ok('POST', '/v1/pipelines/clip/revert', { checkpoint: 'task_02.safetensors' });
    await ok('POST', '/v1/pipelines/clip/pause', { reason: 'maintenance' });
    await ok('POST', '/v1/pipelines/clip/pause');
    await ok('POST', '/v1/pipelines/clip/resume', {});
    await ok('POST', '/v1/pipelines/clip/versions/4/pin');
    await ok('DELETE', '/v1/pipelines/clip/versions/4/pin');
    // "bearer" in any case (RFC 9110: the scheme is case-insensitive)
    const lower = await call(base, 'POST', '/v1/pipelines/clip/resume', {
      headers: { authorization: `bearer ${token}` },
    });
    assert.equal(lower.status, 200);
    assert.deepEqual(r.ops.calls, [
      ['rollback', 'clip', 2, { anyEngine: undefined }],
      ['rollback', 'clip', 3, { anyEngine: true }],
      ['revert', 'clip', 'task_02.safetensors', { anyEngine: undefined }],
      ['pause', 'clip', 'maintenance'],
      ['pause', 'clip', undefined],
      ['resume', 'clip'],
      ['pin', 'clip', 4],
      ['unpin', 'clip', 4],
      ['resume', 'clip'],
    ]);
  });

  test('bad bodies and path values: 400 naming the field, no operation', async () => {
    r.ops.calls = [];
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/v1/pipelines/clip/rollback', undefined, /^body: must be a JSON object$/],
      ['POST', '/v1/pipelines/clip/rollback', {}, /^body\.version: required$/],
      ['POST', '/v1/pipelines/clip/rollback', { version: 0 }, /^body\.version: must be >= 1$/],
      ['POST', '/v1/pipelines/clip/rollback', { version: 1.5 }, /^body\.version: must be integer$/],
      ['POST', '/v1/pipelines/clip/rollback', { version: '2' }, /^body\.version: must be integer$/],
      ['POST', '/v1/pipelines/clip/rollback', { version: 2, force: true }, /^body\.force: unknown field$/],
      ['POST', '/v1/pipelines/clip/rollback', { version: 2, any_engine: 'yes' }, /^body\.any_engine: must be boolean$/],
      ['POST', '/v1/pipelines/clip/rollback', '{"version": 2', /not valid JSON/],
      ['POST', '/v1/pipelines/clip/revert', { checkpoint: '' }, /^body\.checkpoint: must NOT have fewer than 1/],
      ['POST', '/v1/pipelines/clip/revert', { version: 2 }, /^body\.checkpoint: required$/],
      ['POST', '/v1/pipelines/clip/pause', { reason: 3 }, /^body\.reason: must be string$/],
      ['POST', '/v1/pipelines/clip/resume', { now: true }, /^body\.now: unknown field$/],
      ['POST', '/v1/pipelines/clip/versions/0/pin', undefined, /^params\.version: must be an integer ≥ 1$/],
      ['DELETE', '/v1/pipelines/clip/versions/x/pin', undefined, /^params\.version: must be an integer ≥ 1$/],
    ];
    for (const [method, path, body, message] of cases) {
      const res = await call(base, method, path, { token, body });
      assert.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${res.text}`);
      assert.match((res.json as { error: string }).error, message, `${method} ${path} ${JSON.stringify(body)}`);
    }
    const get = await call(base, 'GET', '/v1/pipelines/clip/versions/03');
    assert.equal(get.status, 400);
    assert.match((get.json as { error: string }).error, /^params\.version: must be an integer ≥ 1$/);
    assert.deepEqual(r.ops.calls, []);
  });

  test('unknown pipelines, versions and routes: 404 with a JSON error', async () => {
    r.ops.calls = [];
    const cases: [string, string, unknown, RegExp][] = [
      ['GET', '/v1/pipelines/nope/history', undefined, /^unknown pipeline "nope"$/],
      ['GET', '/v1/pipelines/nope/versions/1', undefined, /^unknown pipeline "nope"$/],
      ['GET', '/v1/pipelines/clip/versions/1', undefined, /^no version 1 of pipeline "clip" is recorded$/],
      ['GET', '/report/nope', undefined, /^unknown pipeline "nope"$/],
      ['GET', '/v1/events?pipeline=nope', undefined, /^unknown pipeline "nope"$/],
      ['POST', '/v1/pipelines/nope/rollback', { version: 1 }, /^unknown pipeline "nope"$/],
      ['POST', '/v1/pipelines/nope/versions/1/pin', undefined, /^unknown pipeline "nope"$/],
      ['GET', '/v2/pipelines', undefined, /^no route GET \/v2\/pipelines$/],
    ];
    for (const [method, path, body, message] of cases) {
      const res = await call(base, method, path, { token, body });
      assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
      assert.match((res.json as { error: string }).error, message);
    }
    assert.deepEqual(r.ops.calls, []);
  });

  test("an operation's refusal maps to its status with its message", async () => {
    for (const [code, status] of [
      ['not_found', 404],
      ['conflict', 409],
      ['invalid', 400],
    ] as const) {
      r.ops.fail = new OperationError(code, `refused: ${code}`);
      const res = await call(base, 'POST', '/v1/pipelines/clip/rollback', { token, body: { version: 9 } });
      assert.equal(res.status, status);
      assert.deepEqual(res.json, { error: `refused: ${code}` });
    }
    r.ops.fail = null;
  });

  test('a Host header that is not a loopback name: 403 (DNS rebinding)', async () => {
    assert.equal((await getWithHost(api.port!, '/v1/pipelines', 'evil.example:80')).status, 403);
    assert.equal((await getWithHost(api.port!, '/v1/pipelines', `localhost:${api.port}`)).status, 200);
    assert.equal((await getWithHost(api.port!, '/v1/pipelines', `[::1]:${api.port}`)).status, 200);
  });

  test('events: each as event/id/data, filtered by ?pipeline=, with heartbeats', async () => {
    const all = await EventReader.open(`${base}/v1/events`);
    const clip = await EventReader.open(`${base}/v1/events?pipeline=clip`);
    try {
      assert.equal(all.status, 200);
      assert.match(all.contentType, /^text\/event-stream/);
      r.events.emit({ type: 'paused', pipeline: 'other', reason: 'operator' });
      r.events.emit({ type: 'version_published', pipeline: 'clip', version: 3, parent: 2, path: '/m/clip/3' });
      const published = await all.next('version_published', 5_000);
      assert.deepEqual(
        { ...published.data, at: undefined },
        {
          type: 'version_published',
          pipeline: 'clip',
          version: 3,
          parent: 2,
          path: '/m/clip/3',
          at: undefined,
        },
      );
      assert.match(String(published.data.at), /^\d{4}-\d\d-\d\dT/);
      assert.deepEqual(
        all.messages.map((m) => m.event),
        ['paused', 'version_published'],
      );
      assert.ok(Number(all.messages[1]!.id) > Number(all.messages[0]!.id), 'ids increase');
      await clip.next('version_published', 5_000);
      assert.deepEqual(
        clip.messages.map((m) => m.event),
        ['version_published'],
        'the other pipeline is filtered out',
      );
      await all.waitFor(() => all.comments.includes('heartbeat'), 2_000, 'heartbeat');
    } finally {
      all.close();
      clip.close();
    }
  });
});

describe('API off loopback', () => {
  test('every route needs the token, GETs and the event stream too', async () => {
    const r = rig({ host: '0.0.0.0' });
    const api = await startApi(r.deps);
    try {
      const base = `http://127.0.0.1:${api.port}`;
      const token = readFileSync(join(r.dir, 'api-token'), 'utf8').trim();
      for (const path of ['/healthz', '/v1/pipelines', '/v1/pipelines/clip/history', '/v1/events', '/report/clip']) {
        const res = await call(base, 'GET', path);
        assert.equal(res.status, 401, path);
        assert.match((res.json as { error: string }).error, /^missing Authorization/);
      }
      assert.equal((await call(base, 'GET', '/healthz', { token: 'nope' })).status, 401);
      assert.equal((await call(base, 'GET', '/healthz', { token })).status, 200);
      assert.equal((await call(base, 'GET', '/v1/pipelines', { token })).status, 200);
      // no Host check off loopback: the token is what protects it
      assert.equal((await getWithHost(api.port!, '/healthz', 'example.org')).status, 401);
      assert.ok(r.lines.some((l) => /every route needs the bearer token/.test(l.message)));
    } finally {
      await api.close();
      r.store.close();
    }
  });
});

describe('API token file', () => {
  test('an existing token is used; group/world-readable warns; an empty file is an error', async () => {
    const r = rig({});
    const file = join(r.dir, 'api-token');
    writeFileSync(file, 'my-secret-token\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const api = await startApi(r.deps);
    try {
      const base = `http://127.0.0.1:${api.port}`;
      assert.equal((await call(base, 'POST', '/v1/pipelines/clip/resume', { token: 'my-secret-token' })).status, 200);
      assert.equal(readFileSync(file, 'utf8'), 'my-secret-token\n', 'left as it was');
      assert.ok(r.lines.some((l) => l.level === 'warn' && /has mode 0644: others may read it/.test(l.message)));
    } finally {
      await api.close();
    }
    writeFileSync(file, '  \n');
    await assert.rejects(startApi(r.deps), /is empty/);
    assert.ok(!existsSync(join(r.dir, 'cmerge.sock')), 'nothing listens after a failed start');
    r.store.close();
  });

  test('a token_file elsewhere is created there, in a folder made for it', async () => {
    const other = tempDir('cmerge-api-token-');
    const file = join(other, 'secrets', 'token');
    const r = rig({ token_file: file });
    const api = await startApi(r.deps);
    await api.close();
    r.store.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.ok(!existsSync(join(r.dir, 'api-token')));
  });
});

describe('API unix socket', () => {
  test('no token needed; callDaemon returns the JSON or throws the error with its status', async () => {
    const r = rig();
    const api = await startApi(r.deps);
    try {
      assert.equal(api.port, null, 'no TCP without api:');
      assert.ok(!existsSync(join(r.dir, 'api-token')), 'no token file without api:');
      const result = (await callDaemon(r.dir, 'POST', '/v1/pipelines/clip/versions/2/pin')) as OperationResult;
      assert.equal(result.operation, 'pin');
      await callDaemon(r.dir, 'POST', '/v1/pipelines/clip/rollback', { version: 1 });
      assert.deepEqual(r.ops.calls, [
        ['pin', 'clip', 2],
        ['rollback', 'clip', 1, { anyEngine: undefined }],
      ]);
      const status = (await callDaemon(r.dir, 'GET', '/v1/pipelines')) as { pipelines: unknown[] };
      assert.equal(status.pipelines.length, 1);
      r.ops.fail = new OperationError('conflict', 'version 2 is already pinned');
      await assert.rejects(
        callDaemon(r.dir, 'POST', '/v1/pipelines/clip/versions/2/pin'),
        (e: unknown) => e instanceof DaemonError && e.status === 409 && e.message === 'version 2 is already pinned',
      );
      await assert.rejects(
        callDaemon(r.dir, 'POST', '/v1/pipelines/clip/rollback', { version: 'x' }),
        (e: unknown) => e instanceof DaemonError && e.status === 400 && /body\.version/.test(e.message),
      );
    } finally {
      await api.close();
    }
    assert.ok(!existsSync(join(r.dir, 'cmerge.sock')), 'close removes the socket file');
    await assert.rejects(callDaemon(r.dir, 'GET', '/healthz'), DaemonNotRunning);
    r.store.close();
  });

  test('a stale socket file is replaced; a live one is refused', async () => {
    const r = rig();
    // a crashed daemon's socket: a process listens on it and is killed, the file stays
    const crashed = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(process.argv[1], () => console.log('listening'))`,
      join(r.dir, 'cmerge.sock'),
    ]);
    await new Promise<void>((res) => crashed.stdout.once('data', () => res()));
    crashed.kill('SIGKILL');
    await new Promise((res) => crashed.once('exit', res));
    const staleIno = statSync(join(r.dir, 'cmerge.sock')).ino;
    await assert.rejects(callDaemon(r.dir, 'GET', '/healthz'), DaemonNotRunning);
    const api = await startApi(r.deps);
    try {
      assert.notEqual(statSync(api.socketPath!).ino, staleIno);
      assert.deepEqual(await callDaemon(r.dir, 'GET', '/healthz'), { status: 'ok' });
      await assert.rejects(startApi(r.deps), /another cmerge daemon is listening/);
      assert.deepEqual(await callDaemon(r.dir, 'GET', '/healthz'), { status: 'ok' }, 'the first is unharmed');
    } finally {
      await api.close();
      r.store.close();
    }
  });

  test('close ends open event streams instead of waiting for them', async () => {
    const r = rig({});
    const api = await startApi(r.deps);
    const reader = await EventReader.open(`http://127.0.0.1:${api.port}/v1/events`);
    const t0 = Date.now();
    await api.close();
    await reader.ended;
    assert.ok(Date.now() - t0 < 3_000, `close took ${Date.now() - t0} ms`);
    r.store.close();
  });
});

describe('api: in the config', () => {
  const yaml = (api: string) =>
    `state_dir: ./state\n${api}pipelines:\n  - {name: clip, base: b.safetensors, drop: d, repository: r, method: opcm}\n`;

  test('defaults: host 127.0.0.1, token_file <state_dir>/api-token; paths resolve against the config folder', () => {
    const cfg = parseConfig(yaml('api: {port: 8780}\n'), '/etc/cmerge/cmerge.yaml');
    assert.deepEqual(cfg.api, { port: 8780, host: '127.0.0.1', token_file: '/etc/cmerge/state/api-token' });
    const other = parseConfig(
      yaml('api: {port: 0, host: 0.0.0.0, token_file: secrets/token}\n'),
      '/etc/cmerge/cmerge.yaml',
    );
    assert.deepEqual(other.api, { port: 0, host: '0.0.0.0', token_file: '/etc/cmerge/secrets/token' });
    assert.equal('api' in parseConfig(yaml(''), '/etc/cmerge/cmerge.yaml'), false, 'absent: no API');
  });

  test('unknown keys, bad ports and an empty host are errors naming the key', () => {
    const problems = (api: string) => {
      try {
        parseConfig(yaml(api), '/etc/cmerge/cmerge.yaml');
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    assert.match(problems('api: {port: 8780, tokenfile: x}\n'), /api\.tokenfile/);
    assert.match(problems('api: {port: 70000}\n'), /api\.port/);
    assert.match(problems('api: {port: 1.5}\n'), /api\.port/);
    assert.match(problems("api: {port: 1, host: ''}\n"), /api\.host/);
    assert.match(problems('api: {host: 127.0.0.1}\n'), /api\.port/);
  });

  test('the daemon refuses to start when api.port is taken', async () => {
    const ws = workspace('cmerge-api-port-', 1);
    const taken = createServer();
    await new Promise<void>((res) => taken.listen(0, '127.0.0.1', res));
    const port = (taken.address() as AddressInfo).port;
    try {
      const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [ws.pipeline], { api: { port } });
      await assert.rejects(
        loadDaemonConfig(config),
        new RegExp(`api\\.port: ${port} on 127\\.0\\.0\\.1 is already in use`),
      );
    } finally {
      taken.close();
    }
  });
});

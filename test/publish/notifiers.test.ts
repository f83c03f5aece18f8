import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { SseHubs, runNotifiers, type NotifierOutcome, type NotifyContext } from '../../src/publish/index.js';
import { tempDir } from '../helpers/paths.js';

const ctx: NotifyContext = {
  pipeline: 'clip',
  version: 7,
  path: '/srv/models/clip/7',
  modelFile: '/srv/models/clip/7/model.safetensors',
};

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A real HTTP server on 127.0.0.1; `reply` decides each response (or never answers). */
async function server(
  reply: (n: number, req: Seen) => number | 'hang',
): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body };
      seen.push(s);
      const r = reply(seen.length, s);
      if (r !== 'hang') res.writeHead(r, { 'content-type': 'text/plain' }).end(r >= 300 ? 'model is busy' : 'ok');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  return {
    url,
    seen,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

test('http: templated URL, headers and JSON body; retries after 503 until 2xx', async () => {
  const s = await server((n) => (n < 3 ? 503 : 200));
  try {
    const recorded: NotifierOutcome[] = [];
    const out = await runNotifiers(
      [
        {
          type: 'http',
          name: 'sglang',
          url: `${s.url}/update_weights_from_disk?v={version}`,
          headers: { authorization: 'Bearer secret-{pipeline}' },
          body: { model_path: '{path}', note: ['{model_file}', 3] },
          timeout_s: 5,
          retries: 3,
          backoff_s: 0.05,
        },
      ],
      { ...ctx, path: '/srv/models/clip "x"\\7' },
      { onOutcome: (o) => recorded.push(o) },
    );
    assert.deepEqual(
      out.map((o) => [o.notifier, o.type, o.attempt, o.ok, o.status]),
      [
        ['sglang', 'http', 1, false, 503],
        ['sglang', 'http', 2, false, 503],
        ['sglang', 'http', 3, true, 200],
      ],
    );
    assert.deepEqual(recorded, out, 'onOutcome sees every attempt');
    assert.match(out[0]!.detail, /503 model is busy/);
    assert.doesNotMatch(out.map((o) => o.detail).join(), /secret/, 'headers are not logged');
    const req = s.seen[2]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/update_weights_from_disk?v=7');
    assert.equal(req.headers.authorization, 'Bearer secret-clip');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(req.body), { model_path: '/srv/models/clip "x"\\7', note: [ctx.modelFile, 3] });
  } finally {
    await s.close();
  }
});

test('http: a string body is templated as is; gives up after retries; the next notifier still runs', async () => {
  const bad = await server(() => 500);
  const good = await server(() => 204);
  try {
    const out = await runNotifiers(
      [
        { type: 'http', url: `${bad.url}/x`, retries: 1, backoff_s: 0.01, timeout_s: 5 },
        {
          type: 'http',
          method: 'PUT',
          url: `${good.url}/v2/repository/models/{pipeline}/load`,
          body: '{"model_path": "{path}"}',
          timeout_s: 5,
        },
      ],
      ctx,
    );
    assert.deepEqual(
      out.map((o) => [o.notifier, o.attempt, o.ok, o.status]),
      [
        ['http#1', 1, false, 500],
        ['http#1', 2, false, 500],
        ['http#2', 1, true, 204],
      ],
    );
    assert.equal(bad.seen.length, 2);
    assert.equal(good.seen[0]!.method, 'PUT');
    assert.equal(good.seen[0]!.url, '/v2/repository/models/clip/load');
    assert.equal(good.seen[0]!.body, '{"model_path": "/srv/models/clip/7"}');
  } finally {
    await bad.close();
    await good.close();
  }
});

test('http: a server that never answers times out, each attempt within its timeout', async () => {
  const s = await server(() => 'hang');
  try {
    const t0 = Date.now();
    const out = await runNotifiers([{ type: 'http', url: s.url, timeout_s: 0.3, retries: 1, backoff_s: 0.01 }], ctx);
    assert.equal(out.length, 2);
    for (const o of out) {
      assert.equal(o.ok, false);
      assert.match(o.detail, /timed out after 0.3 s/);
      assert.ok(o.durationMs >= 250 && o.durationMs < 2000, `duration ${o.durationMs}`);
    }
    assert.ok(Date.now() - t0 < 3000);
  } finally {
    await s.close();
  }
});

test('http: connection refused is a failed attempt, not an exception', async () => {
  const s = await server(() => 200);
  await s.close(); // the port is now closed
  const out = await runNotifiers([{ type: 'http', url: s.url, retries: 0 }], ctx);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.ok, false);
  assert.match(out[0]!.detail, /ECONNREFUSED/);
});

test('http steps (vLLM style): run in order; a failing step fails the attempt and the retry restarts', async () => {
  let reloadCalls = 0;
  const s = await server((_, req) => (req.url!.startsWith('/collective_rpc') && ++reloadCalls === 1 ? 500 : 200));
  try {
    const out = await runNotifiers(
      [
        {
          type: 'http',
          name: 'vllm',
          retries: 2,
          backoff_s: 0.01,
          timeout_s: 5,
          steps: [
            { url: `${s.url}/sleep?level=2` },
            { url: `${s.url}/wake_up?tags=weights` },
            { url: `${s.url}/collective_rpc`, body: { method: 'reload_weights', kwargs: { weights_path: '{path}' } } },
            { url: `${s.url}/wake_up?tags=kv_cache` },
          ],
        },
      ],
      ctx,
    );
    assert.deepEqual(
      out.map((o) => o.ok),
      [false, true],
    );
    assert.match(out[0]!.detail, /step 3\/4 POST .*collective_rpc -> 500/);
    assert.deepEqual(
      s.seen.map((r) => r.url),
      [
        '/sleep?level=2',
        '/wake_up?tags=weights',
        '/collective_rpc',
        '/sleep?level=2',
        '/wake_up?tags=weights',
        '/collective_rpc',
        '/wake_up?tags=kv_cache',
      ],
    );
    assert.deepEqual(JSON.parse(s.seen[5]!.body), { method: 'reload_weights', kwargs: { weights_path: ctx.path } });
  } finally {
    await s.close();
  }
});

test('command: argv templated without a shell, env set, exit 0 is success', async () => {
  const dir = tempDir();
  const out = await runNotifiers(
    [
      {
        type: 'command',
        argv: [
          '/bin/sh',
          '-c',
          'printf "%s|%s|%s" "$1" "$CMERGE_VERSION" "$CMERGE_MODEL_FILE" > "$2"',
          'sh',
          '{path}; rm -rf /',
          join(dir, 'out'),
        ],
      },
    ],
    ctx,
  );
  assert.deepEqual(
    out.map((o) => [o.ok, o.exitCode, o.attempt]),
    [[true, 0, 1]],
  );
  assert.equal(readFileSync(join(dir, 'out'), 'utf8'), `${ctx.path}; rm -rf /|7|${ctx.modelFile}`);
});

test('command: nonzero exit retried, stderr tail captured', async () => {
  const out = await runNotifiers(
    [
      {
        type: 'command',
        argv: ['/bin/sh', '-c', 'echo "reload failed for {pipeline}" >&2; exit 3'],
        retries: 2,
        backoff_s: 0.01,
      },
    ],
    ctx,
  );
  assert.deepEqual(
    out.map((o) => [o.attempt, o.ok, o.exitCode]),
    [
      [1, false, 3],
      [2, false, 3],
      [3, false, 3],
    ],
  );
  assert.match(out[0]!.detail, /exit 3; stderr: reload failed for clip/);
});

test('command: timeout kills the whole process group', async () => {
  const dir = tempDir();
  const pidFile = join(dir, 'pid');
  const t0 = Date.now();
  const out = await runNotifiers(
    [
      {
        type: 'command',
        argv: ['/bin/sh', '-c', `sleep 10 & echo $! > ${pidFile}; sleep 10`],
        timeout_s: 0.5,
        retries: 0,
      },
    ],
    ctx,
  );
  assert.equal(out.length, 1);
  assert.equal(out[0]!.ok, false);
  assert.match(out[0]!.detail, /timed out after 0.5 s/);
  assert.ok(Date.now() - t0 < 3000, 'did not wait for sleep 10');
  const grandchild = Number(readFileSync(pidFile, 'utf8'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(grandchild), false, 'background grandchild was killed too');
});

test('command: a missing program is a failed attempt', async () => {
  const out = await runNotifiers([{ type: 'command', argv: ['/nonexistent/reload'], retries: 0 }], ctx);
  assert.equal(out[0]!.ok, false);
  assert.match(out[0]!.detail, /ENOENT/);
});

test('notifier failures never reject runNotifiers, and a bad config is reported', async () => {
  const out = await runNotifiers(
    [{ type: 'http', retries: 0 } as never, { type: 'command', argv: [], retries: 0 }, { type: 'sse', port: 1 }],
    ctx,
  );
  assert.deepEqual(
    out.map((o) => o.ok),
    [false, false, false],
  );
  assert.match(out[0]!.detail, /needs `url` or `steps`/);
  assert.match(out[2]!.detail, /no SSE hub registry/);
});

test('sse: clients receive version events; late clients get the latest; pipeline filter', async () => {
  const hubs = new SseHubs();
  try {
    const hub = await hubs.get(0);
    const all = await sseClient(`http://127.0.0.1:${hub.port}/events`);
    const onlyOther = await sseClient(`http://127.0.0.1:${hub.port}/events?pipeline=other`);
    const cfg = [{ type: 'sse' as const, port: hub.port }];
    // Same port through the registry: the same hub (port 0 would start a second one).
    const out = await runNotifiers(cfg, ctx, { sse: hubs });
    assert.equal(out[0]!.ok, true);
    assert.match(out[0]!.detail, /sent to 1 client/);
    const ev = await all.next();
    assert.deepEqual(ev, { event: 'version', id: 'clip/7', data: { pipeline: 'clip', version: 7, path: ctx.path } });
    await runNotifiers(cfg, { ...ctx, version: 8 }, { sse: hubs });
    assert.equal((await all.next()).id, 'clip/8');

    const late = await sseClient(`http://127.0.0.1:${hub.port}/events`);
    assert.equal((await late.next()).id, 'clip/8', 'replay of the latest version on connect');
    assert.equal(onlyOther.events.length, 0, 'filtered client got nothing');
    all.close();
    late.close();
    onlyOther.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(hub.clientCount, 0, 'disconnected clients are dropped');
  } finally {
    await hubs.closeAll();
  }
});

/** Running (not gone, not a zombie: PID 1 in containers may not reap orphans). */
function alive(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

interface SseEvent {
  event: string;
  id: string;
  data: unknown;
}

/** A real SSE client: http.get reading and parsing the stream. */
function sseClient(url: string): Promise<{ events: SseEvent[]; next: () => Promise<SseEvent>; close: () => void }> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const waiters: ((e: SseEvent) => void)[] = [];
    let taken = 0;
    const req = get(url, (res) => {
      assert.equal(res.statusCode, 200);
      assert.match(res.headers['content-type']!, /text\/event-stream/);
      let buf = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const f: Record<string, string> = {};
          for (const line of block.split('\n')) {
            const m = line.match(/^([a-z]+): ?(.*)$/);
            if (m) f[m[1]!] = m[2]!;
          }
          if (f.event) {
            const ev = { event: f.event, id: f.id!, data: JSON.parse(f.data!) };
            events.push(ev);
            const w = waiters.shift();
            if (w) {
              taken++;
              w(ev);
            }
          }
        }
      });
      resolve({
        events,
        next: () => (taken < events.length ? Promise.resolve(events[taken++]!) : new Promise((r) => waiters.push(r))),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { runNotifiers, type NotifierOutcome, type NotifyContext } from '../../src/publish/index.js';
import { tempDir } from '../helpers/paths.js';

const ctx: NotifyContext = {
  pipeline: 'llm',
  version: 7,
  path: '/srv/models/llm (a+b)/7',
  modelFile: '/srv/models/llm (a+b)/7/model.safetensors',
};

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface Reply {
  status?: number;
  /** an object is sent as JSON */
  body: unknown;
}

/** A real HTTP server on 127.0.0.1 port 0; `reply` answers each request. */
async function server(reply: (req: Seen) => Reply): Promise<{ url: string; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const s = { method: req.method!, url: req.url!, headers: req.headers, body };
      seen.push(s);
      const r = reply(s);
      const json = typeof r.body !== 'string';
      res
        .writeHead(r.status ?? 200, { 'content-type': json ? 'application/json' : 'text/plain' })
        .end(json ? JSON.stringify(r.body) : r.body);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

/**
 * SGLang's two endpoints: POST /update_weights_from_disk {model_path, weight_version} and
 * GET /get_model_info {weight_version}. A load shows in get_model_info only after `lag` more GETs
 * (a server that reloads in the background), and only the `loadsNeeded`-th POST really loads.
 */
async function sglang(opts: { lag?: number; loadsNeeded?: number; served?: string }) {
  let served = opts.served ?? '6';
  let pending: { version: string; after: number } | undefined;
  let posts = 0;
  const s = await server((req) => {
    if (req.method === 'POST' && req.url === '/update_weights_from_disk') {
      const { weight_version } = JSON.parse(req.body) as { weight_version: string };
      if (++posts >= (opts.loadsNeeded ?? 1)) pending = { version: weight_version, after: opts.lag ?? 0 };
      return { body: { success: true, message: 'ok' } };
    }
    if (req.method === 'GET' && req.url === '/get_model_info') {
      if (pending && pending.after-- <= 0) [served, pending] = [pending.version, undefined];
      return { body: { model_path: '/srv/models/llm', weight_version: served } };
    }
    return { status: 404, body: 'not found' };
  });
  return { ...s, posts: () => posts };
}

function sglangNotifier(url: string, verify: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    type: 'http' as const,
    name: 'sglang',
    url: `${url}/update_weights_from_disk`,
    body: { model_path: '{path}', weight_version: '{version}' },
    retries: 0,
    backoff_s: 0.01,
    ...extra,
    verify: {
      url: `${url}/get_model_info`,
      headers: { authorization: 'Bearer tok-s3cret' },
      expect: { json_path: 'weight_version', equals: '{version}' },
      interval_s: 0.02,
      attempts: 5,
      ...verify,
    },
  };
}

const rows = (out: NotifierOutcome[]) => out.map((o) => [o.attempt, o.ok]);

test('verify: the old version for 2 checks, then the new one: ok at check 3, the 2 mismatches reported', async () => {
  const s = await sglang({ lag: 2 });
  try {
    const recorded: NotifierOutcome[] = [];
    const out = await runNotifiers([sglangNotifier(s.url)], ctx, { onOutcome: (o) => recorded.push(o) });
    assert.deepEqual(rows(out), [
      [1, false],
      [1, false],
      [1, true],
    ]);
    assert.deepEqual(recorded, out, 'every mismatch goes through onOutcome');
    const info = `verify GET ${s.url}/get_model_info`;
    assert.equal(out[0]!.detail, `${info}: weight_version is "6", expected "7" (check 1/5)`);
    assert.equal(out[1]!.detail, `${info}: weight_version is "6", expected "7" (check 2/5)`);
    assert.equal(
      out[2]!.detail,
      `POST ${s.url}/update_weights_from_disk -> 200; ${info} -> 200: weight_version is "7" (check 3/5)`,
    );
    assert.equal(out[2]!.status, 200);
    assert.equal(s.posts(), 1, 'the reload is sent once');
    const checks = s.seen.filter((r) => r.url === '/get_model_info');
    assert.equal(checks.length, 3);
    assert.equal(checks[0]!.headers.authorization, 'Bearer tok-s3cret', 'verify headers are sent');
    assert.deepEqual(JSON.parse(s.seen[0]!.body), { model_path: ctx.path, weight_version: '7' });
    for (const o of out) assert.ok(!o.detail.includes('s3cret'), 'header values stay out of details');
  } finally {
    await s.close();
  }
});

test('verify: a server that never matches fails the attempt naming expected and actual; the retry reloads', async () => {
  const s = await sglang({ loadsNeeded: 99 });
  try {
    const out = await runNotifiers([sglangNotifier(s.url, { attempts: 2 }, { retries: 1 })], ctx);
    assert.deepEqual(rows(out), [
      [1, false],
      [1, false],
      [2, false],
      [2, false],
    ]);
    assert.equal(s.posts(), 2, 'request + verify are retried as a whole');
    const last = out.at(-1)!;
    assert.equal(
      last.detail,
      `POST ${s.url}/update_weights_from_disk -> 200; verify GET ${s.url}/get_model_info: ` +
        `weight_version is "6", expected "7" (check 2/2)`,
    );
  } finally {
    await s.close();
  }
});

test('verify: a failed check is retried by the retry policy, and the second load is served', async () => {
  const s = await sglang({ loadsNeeded: 2 });
  try {
    const out = await runNotifiers([sglangNotifier(s.url, { attempts: 2 }, { retries: 2 })], ctx);
    assert.deepEqual(rows(out), [
      [1, false],
      [1, false],
      [2, true],
    ]);
    assert.equal(s.posts(), 2);
    assert.match(out[2]!.detail, /weight_version is "7" \(check 1\/2\)$/);
  } finally {
    await s.close();
  }
});

test('verify: regex with escaped placeholders, json_path into arrays, whole-body equals', async () => {
  const s = await server((req) =>
    req.url === '/v1/models'
      ? { body: { data: [{ id: 'llm', root: `${ctx.path}` }] } }
      : req.url === '/version'
        ? { body: ' 7\n' }
        : { body: 'ok' },
  );
  try {
    const notifier = (name: string, path: string, expect: Record<string, unknown>) => ({
      type: 'http' as const,
      name,
      url: `${s.url}/reload`,
      retries: 0,
      verify: { url: `${s.url}${path}`, expect, interval_s: 0.01, attempts: 2 },
    });
    const out = await runNotifiers(
      [
        // {path} holds regex characters "(", "+", "." : they are escaped, so it matches literally
        notifier('regex', '/v1/models', { json_path: 'data.0.root', regex: '^{path}$' }),
        notifier('whole-body', '/version', { equals: '{version}' }),
        notifier('regex-miss', '/v1/models', { json_path: 'data.0.id', regex: '^llm-v{version}$' }),
        notifier('missing', '/v1/models', { json_path: 'data.1.id', equals: 'llm' }),
      ],
      ctx,
    );
    assert.deepEqual(
      out.map((o) => [o.notifier, o.ok]),
      [
        ['regex', true],
        ['whole-body', true],
        ['regex-miss', false],
        ['regex-miss', false],
        ['missing', false],
        ['missing', false],
      ],
    );
    assert.match(out[1]!.detail, /: response is "7" \(check 1\/2\)$/);
    assert.ok(out[3]!.detail.endsWith(`data.0.id is "llm", expected to match /^llm-v7$/ (check 2/2)`), out[3]!.detail);
    assert.match(out[5]!.detail, /: data\.1\.id is missing in "\{\\"data\\":/);
  } finally {
    await s.close();
  }
});

test('verify: a non-2xx status, a non-JSON body and a refused connection are mismatches, checked again', async () => {
  let n = 0;
  const s = await server(() => {
    n++;
    if (n === 1) return { body: 'ok' }; // the notifier's request
    if (n === 2) return { status: 503, body: 'loading' };
    if (n === 3) return { body: '<html>starting</html>' };
    return { body: { weight_version: 7 } }; // a number matches "7" too
  });
  const refused = await server(() => ({ body: 'ok' }));
  await refused.close();
  try {
    const out = await runNotifiers(
      [
        sglangNotifier(s.url),
        {
          type: 'http',
          name: 'down',
          url: `${s.url}/update_weights_from_disk`,
          body: {},
          retries: 0,
          verify: { url: `${refused.url}/health`, expect: { equals: 'ok' }, interval_s: 0.01, attempts: 1 },
        },
      ],
      ctx,
    );
    assert.deepEqual(
      out.map((o) => [o.notifier, o.ok, o.status]),
      [
        ['sglang', false, 503],
        ['sglang', false, 200],
        ['sglang', true, 200],
        ['down', false, undefined],
      ],
    );
    assert.match(out[0]!.detail, /get_model_info -> 503 loading \(check 1\/5\)$/);
    assert.match(out[1]!.detail, /get_model_info: response is not JSON: "<html>starting<\/html>" \(check 2\/5\)$/);
    assert.match(
      out[3]!.detail,
      /; verify GET http:\/\/127\.0\.0\.1:\d+\/health: fetch failed \(ECONNREFUSED\) \(check 1\/1\)$/,
    );
  } finally {
    await s.close();
  }
});

test('verify after a command notifier: the command loads, the check confirms', async () => {
  let served = '6';
  const s = await server((req) => {
    if (req.method === 'PUT') served = req.body;
    return { body: { weight_version: served } };
  });
  try {
    const load = 'fetch(process.argv[1], { method: "PUT", body: process.env.CMERGE_VERSION })';
    const out = await runNotifiers(
      [
        {
          type: 'command',
          name: 'loader',
          argv: [process.execPath, '-e', load, `${s.url}/load`],
          verify: {
            url: `${s.url}/info`,
            expect: { json_path: 'weight_version', equals: '{version}' },
            interval_s: 0.01,
          },
        },
      ],
      ctx,
    );
    assert.deepEqual(rows(out), [[1, true]]);
    assert.equal(out[0]!.exitCode, 0);
    assert.equal(out[0]!.detail, `exit 0; verify GET ${s.url}/info -> 200: weight_version is "7" (check 1/10)`);
  } finally {
    await s.close();
  }
});

test('verify: shutdown during the wait between checks ends the notifier at once', async () => {
  const s = await sglang({ loadsNeeded: 99 });
  try {
    const abort = new AbortController();
    const t0 = performance.now();
    const out = await runNotifiers([sglangNotifier(s.url, { interval_s: 30 }, { retries: 3 })], ctx, {
      signal: abort.signal,
      // shut down once the first mismatch is in, i.e. during the 30 s wait before check 2
      onOutcome: () => setTimeout(() => abort.abort(), 50),
    });
    assert.ok(performance.now() - t0 < 5000, 'did not wait out the interval');
    assert.deepEqual(rows(out), [
      [1, false],
      [1, false],
    ]);
    assert.equal(
      out[1]!.detail,
      `POST ${s.url}/update_weights_from_disk -> 200; verify GET ${s.url}/get_model_info: aborted (shutdown) after 1 check(s)`,
    );
  } finally {
    await s.close();
  }
});

const CONFIG = `state_dir: ./state
pipelines:
  - name: llm
    base: /models/llm-base
    drop: /srv/drop/llm
    repository: /srv/models
    method: opcm
    params: { alpha: 0.5 }
    notifiers:
`;

function load(notifiers: string) {
  const file = join(tempDir(), 'cmerge.yaml');
  writeFileSync(file, CONFIG + notifiers.replace(/^/gm, '      '));
  return loadConfig(file);
}

function errors(notifiers: string): string[] {
  try {
    load(notifiers);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message.split('\n');
  }
  assert.fail('config was accepted');
}

test('config: verify on http and command notifiers, defaults filled', () => {
  const c = load(`- type: http
  url: "http://127.0.0.1:30000/update_weights_from_disk"
  body: { model_path: "{path}", weight_version: "{version}" }
  verify:
    url: "http://127.0.0.1:30000/get_model_info"
    expect: { json_path: weight_version, equals: "{version}" }
- type: command
  argv: [systemctl, restart, llm]
  verify: { url: "http://h/health", method: POST, timeout_s: 3, interval_s: 0, attempts: 1, expect: { regex: "^ok", json_path: data.0.status } }
- { type: http, url: "http://h/load", verify: { url: "http://h/v", expect: { equals: 7 } } }
`);
  const [http, cmd, numeric] = c.pipelines[0]!.notifiers;
  assert.ok(http?.type === 'http' && cmd?.type === 'command' && numeric?.type === 'http');
  assert.deepEqual(http.verify, {
    method: 'GET',
    url: 'http://127.0.0.1:30000/get_model_info',
    timeout_s: 10,
    expect: { json_path: 'weight_version', equals: '{version}' },
    interval_s: 2,
    attempts: 10,
  });
  assert.deepEqual(cmd.verify, {
    method: 'POST',
    url: 'http://h/health',
    timeout_s: 3,
    expect: { regex: '^ok', json_path: 'data.0.status' },
    interval_s: 0,
    attempts: 1,
  });
  assert.equal(numeric.verify?.expect.equals, '7');
});

test('config: unknown verify keys and bad expectations are refused, naming the key', () => {
  const cases: [string, RegExp][] = [
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", expect: { equals: x }, intervall_s: 1 } }',
      /notifiers\[0\]\.verify\.intervall_s: unknown key \(did you mean interval_s\?\)$/,
    ],
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", expect: { equal: x } } }',
      /notifiers\[0\]\.verify\.expect\.equal: unknown key/,
    ],
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", expect: { json_path: a } } }',
      /notifiers\[0\]\.verify\.expect: give equals or regex \(one of them\)$/,
    ],
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", expect: { equals: "1", regex: "1" } } }',
      /notifiers\[0\]\.verify\.expect: give equals or regex \(one of them\)$/,
    ],
    [
      '- { type: command, argv: [a], verify: { url: "http://h/v", expect: { regex: "(" } } }',
      /notifiers\[0\]\.verify\.expect\.regex: expected a valid regular expression/,
    ],
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", expect: { json_path: "a..b", equals: "1" } } }',
      /notifiers\[0\]\.verify\.expect\.json_path: expected a dotted path/,
    ],
    ['- { type: http, url: "http://h", verify: { expect: { equals: "1" } } }', /notifiers\[0\]\.verify\.url: required/],
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", attempts: 0, expect: { equals: "1" } } }',
      /notifiers\[0\]\.verify\.attempts: expected a number >= 1/,
    ],
    [
      '- { type: http, url: "http://h", verify: { url: "http://h/v", body: { a: 1 }, expect: { equals: "1" } } }',
      /notifiers\[0\]\.verify\.body: a GET request cannot have a body$/,
    ],
    [
      '- { type: sse, port: 9, verify: { url: "http://h/v", expect: { equals: "1" } } }',
      /notifiers\[0\]\.verify: unknown key/,
    ],
  ];
  for (const [text, re] of cases) {
    const lines = errors(text);
    assert.ok(
      lines.some((l) => re.test(l)),
      `no line matches ${re}:\n${lines.join('\n')}`,
    );
  }
});

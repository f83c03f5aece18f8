/**
 * `cmerge daemon` on a bad config: it checks the whole config (schema, paths, ports) before it
 * creates anything, reports every problem, exits 1 and leaves no state folder, database, drop
 * folder or repository behind.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { DaemonProc, workspace, writeConfig } from './support.js';

/** Runs the daemon until it fails to start (or, wrongly, starts); its error messages and exit code. */
async function failedStart(config: string): Promise<{ code: number | null; errors: string[] }> {
  const d = new DaemonProc(config);
  try {
    const first = await d.waitFor(/^cmerge daemon (failed to start|ready)/, 60_000);
    assert.match(first.message, /failed to start/, d.tail());
    const { code } = await d.exited;
    return { code, errors: d.lines.filter((l) => l.level === 'error').map((l) => l.message) };
  } finally {
    await d.kill();
  }
}

/** Nothing the daemon creates on start exists. */
function assertNothingCreated(paths: { state: string; drop: string; repo: string }): void {
  assert.ok(!existsSync(join(paths.state, 'cmerge.sqlite')), 'no database');
  assert.ok(!existsSync(paths.state), 'no state folder');
  assert.ok(!existsSync(paths.drop), 'no drop folder');
  assert.ok(!existsSync(paths.repo), 'no repository');
}

test('a missing base, then with a typo too: every problem reported, exit 1, nothing created', async () => {
  const { work } = workspace('cmerge-preflight-base-', 1);
  const paths = { state: join(work, 'new-state'), drop: join(work, 'new-drop'), repo: join(work, 'new-repo') };
  const base = join(work, 'models', 'no-such-base.safetensors');
  const pipeline = { base, drop: paths.drop, repository: paths.repo };
  const config = writeConfig(join(work, 'cmerge.yaml'), paths.state, [pipeline]);
  const prefix = `cmerge daemon failed to start: ${config}: `;
  const missing = `${prefix}pipelines[0].base: ${base} does not exist`;

  // before any state: no state folder, database, drop folder or repository is made for it
  let r = await failedStart(config);
  assert.equal(r.code, 1);
  assert.deepEqual(r.errors, [missing]);
  assertNothingCreated(paths);

  writeConfig(config, paths.state, [{ ...pipeline, retension: { keep: 2 } }]);
  r = await failedStart(config);
  assert.equal(r.code, 1);
  assert.deepEqual(
    r.errors.sort(),
    [`${prefix}pipelines[0].retension: unknown key (did you mean retention?)`, missing].sort(),
  );
  assertNothingCreated(paths);
});

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      assert.ok(address && typeof address === 'object');
      resolve({ server, port: address.port });
    });
  });
}

test('the metrics port and an SSE port already taken: both reported, exit 1, nothing created', async () => {
  const { work, models } = workspace('cmerge-preflight-port-', 1);
  const paths = { state: join(work, 'new-state'), drop: join(work, 'new-drop'), repo: join(work, 'new-repo') };
  const metrics = await listen();
  const sse = await listen();
  try {
    const config = writeConfig(
      join(work, 'cmerge.yaml'),
      paths.state,
      [{ base: models.base, drop: paths.drop, repository: paths.repo, notifiers: [{ type: 'sse', port: sse.port }] }],
      { metrics_port: metrics.port },
    );
    const { code, errors } = await failedStart(config);
    assert.equal(code, 1);
    const prefix = `cmerge daemon failed to start: ${config}: `;
    assert.deepEqual(errors, [
      `${prefix}metrics_port: ${metrics.port} on 127.0.0.1 is already in use`,
      `${prefix}pipelines[0].notifiers[0].port: ${sse.port} on 127.0.0.1 is already in use`,
    ]);
    assertNothingCreated(paths);
  } finally {
    metrics.server.close();
    sse.server.close();
  }
});

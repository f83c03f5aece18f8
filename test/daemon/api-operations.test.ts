/**
 * Operator commands through a real daemon's API: over the unix socket without a token (the CLI's
 * way, src/cli/daemon-client.ts) and over TCP with the bearer token; each change visible in the
 * CLI's --json output and the repository, and announced on the event stream.
 */
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { callDaemon, DaemonError } from '../../src/cli/daemon-client.js';
import type { OperationResult } from '../../src/daemon/operations/types.js';
import { cmerge } from '../helpers/cli.js';
import { call, EventReader, startWithApi } from './api-support.js';
import { currentVersion, dropFile, waitForVersion } from './support.js';

describe('daemon API operations', () => {
  let w: Awaited<ReturnType<typeof startWithApi>>;
  let events: EventReader;
  const json = (...args: string[]): Record<string, unknown> => {
    const r = cmerge([...args, '--config', w.config, '--json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const post = async (path: string, body?: unknown) => {
    const res = await call(w.base, 'POST', path, { token: w.token, body });
    assert.equal(res.status, 200, `${path}: ${res.text}`);
    return res.json as OperationResult;
  };

  before(async () => {
    w = await startWithApi('cmerge-api-ops-');
    for (let i = 0; i < 3; i++) {
      dropFile(w.models.tasks[i]!, w.drop);
      await waitForVersion(w.repo, 'clip', i + 1, 30_000, w.d);
    }
    events = await EventReader.open(`${w.base}/v1/events?pipeline=clip`);
  });
  after(async () => {
    events?.close();
    await w.d.stop();
  });

  test('over the unix socket, pin and unpin need no token', async () => {
    const pinned = (await callDaemon(w.state, 'POST', '/v1/pipelines/clip/versions/2/pin')) as OperationResult;
    assert.deepEqual([pinned.operation, pinned.version], ['pin', 2]);
    assert.equal(json('show', 'clip', '2').pinned, true);
    await events.next('pinned', 5_000);
    const unpinned = (await callDaemon(w.state, 'DELETE', '/v1/pipelines/clip/versions/2/pin')) as OperationResult;
    assert.equal(unpinned.operation, 'unpin');
    assert.equal(json('show', 'clip', '2').pinned, false);
    await events.next('unpinned', 5_000);
  });

  test('pause and resume over TCP with the token, announced on the stream', async () => {
    assert.equal((await post('/v1/pipelines/clip/pause', { reason: 'maintenance' })).operation, 'pause');
    assert.equal((await events.next('paused', 5_000)).data.reason, 'maintenance');
    assert.equal((await post('/v1/pipelines/clip/resume')).operation, 'resume');
    await events.next('resumed', 5_000);
  });

  test('revert a checkpoint: a new version without it, announced on the stream', async () => {
    const dropped = basename(w.models.tasks[1]!);
    const r = await post('/v1/pipelines/clip/revert', { checkpoint: dropped });
    assert.equal(r.operation, 'revert');
    assert.equal(r.version, 4);
    await waitForVersion(w.repo, 'clip', 4, 60_000, w.d);
    const shown = json('show', 'clip', '4') as { checkpoints: { name: string }[] };
    assert.deepEqual(
      shown.checkpoints.map((c) => c.name),
      [basename(w.models.tasks[0]!), basename(w.models.tasks[2]!)],
    );
    assert.equal((await events.next('revert', 5_000)).data.checkpoint, dropped);
  });

  test('rollback: current moves, the API and the CLI agree, the stream announces it', async () => {
    const r = await post('/v1/pipelines/clip/rollback', { version: 1 });
    assert.deepEqual([r.operation, r.current_version], ['rollback', 1]);
    assert.equal(currentVersion(w.repo, 'clip'), 1);
    const status = await call(w.base, 'GET', '/v1/pipelines');
    assert.deepEqual(status.json, json('status'));
    assert.equal((status.json as { pipelines: { current_version: number }[] }).pipelines[0]!.current_version, 1);
    assert.equal((await events.next('rollback', 5_000)).data.version, 1);
  });

  test('refusals from the operations: 404 with the message, nothing changed', async () => {
    const before = json('status');
    for (const [path, body] of [
      ['/v1/pipelines/clip/rollback', { version: 99 }],
      ['/v1/pipelines/clip/revert', { checkpoint: 'no-such-checkpoint' }],
      ['/v1/pipelines/clip/versions/99/pin', undefined],
    ] as const) {
      const res = await call(w.base, 'POST', path, { token: w.token, body });
      assert.equal(res.status, 404, `${path}: ${res.text}`);
      assert.equal(typeof (res.json as { error: unknown }).error, 'string');
    }
    await assert.rejects(
      callDaemon(w.state, 'DELETE', '/v1/pipelines/clip/versions/99/pin'),
      (e: unknown) => e instanceof DaemonError && e.status === 404,
    );
    assert.deepEqual(json('status'), before);
  });
});

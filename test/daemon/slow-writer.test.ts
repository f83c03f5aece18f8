import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { packSafetensors } from '../helpers/bad-checkpoints.js';
import { DaemonProc, manifest, sleep, status, waitForVersion, waitUntil, workspace, writeConfig } from './support.js';

/**
 * Slow writers (a copy over a slow link, rsync without --temp-dir) write the checkpoint under its
 * final name and may stop for seconds at any byte. A real daemon must wait for a file that is
 * shorter than its 8-byte prefix or than the header the prefix announces, for longer than the
 * settle window, and merge it once the rest comes; a complete header that is not valid is still
 * rejected at once, long before the incomplete timeout.
 */
test('a file written in two parts with a pause longer than the settle window is merged, not quarantined', async () => {
  const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-slow-writer-', 2);
  const settleMs = 200;
  const pauseMs = 1_500;
  const config = writeConfig(join(work, 'cmerge.yaml'), state, [{ ...pipeline, settle_ms: settleMs }]);
  // the incomplete timeout (30 s) is far beyond the pause: only it may end a wait
  const d = new DaemonProc(config, ['--incomplete-timeout', '30']);
  try {
    await d.ready();
    const a = readFileSync(models.tasks[0]!);
    const b = readFileSync(models.tasks[1]!);
    assert.ok(Number(b.readBigUInt64LE(0)) > 200, 'the second file stops inside its header');
    const parts: [string, Buffer, number][] = [
      ['prefix-only.safetensors', a, 4], // not even the 8-byte length yet
      ['half-header.safetensors', b, 200], // the length, and part of the header it announces
    ];
    for (const [name, bytes, cut] of parts) writeFileSync(join(drop, name), bytes.subarray(0, cut));
    await sleep(pauseMs);
    assert.deepEqual(status(config).pipelines[0]!.rejected, [], 'nothing rejected during the pause');
    for (const [name, bytes, cut] of parts) appendFileSync(join(drop, name), bytes.subarray(cut));

    // a complete header that is not JSON is bad at once, not after the incomplete timeout
    const t0 = Date.now();
    writeFileSync(join(drop, 'bad-header.safetensors'), packSafetensors('{"a": ', Buffer.alloc(0)));
    await waitForVersion(repo, 'clip', 2, 30_000, d);
    await waitUntil(() => status(config).pipelines[0]!.rejected.length === 1, 15_000, 'the bad header is rejected');
    assert.ok(Date.now() - t0 < 20_000, 'rejected well before the 30 s incomplete timeout');

    const rejected = status(config).pipelines[0]!.rejected;
    assert.deepEqual(
      rejected.map((r) => r.name),
      ['bad-header.safetensors'],
    );
    assert.match(rejected[0]!.reason, /JSON/);
    assert.deepEqual(
      manifest(repo, 'clip', 2)
        .checkpoints.map((c) => c.name)
        .sort(),
      ['half-header.safetensors', 'prefix-only.safetensors'],
    );
    for (const [name] of parts) assert.ok(!existsSync(join(drop, '.quarantine', name)), `${name} not quarantined`);
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});

import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createModelWriter, openModel } from '../../src/io/model.js';
import { cmerge } from '../helpers/cli.js';
import {
  DaemonProc,
  manifest,
  metricsText,
  sleep,
  status,
  waitForVersion,
  waitUntil,
  workspace,
  writeConfig,
} from './support.js';

/**
 * Entries of the drop folder that are not complete yet (a truncated file, a folder missing a
 * shard) with a real daemon: status (JSON and table), the log and /metrics show them while the
 * daemon waits; the incomplete timeout comes from the pipeline's config before the flag, counts
 * from the entry's last change recorded in SQLite (a restart does not reset it), and a writer
 * that is still going, however slowly, is never rejected (README, intake).
 */

/** `model`'s tensors as an index and ≥ 2 shards in `dir`; returns the shard names, sorted. */
function writeShards(model: string, dir: string): string[] {
  const source = openModel(model);
  const specs = [...source.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
  const writer = createModelWriter(dir, specs, { maxShardBytes: Math.ceil(source.dataBytes / 3) });
  for (const name of writer.order) writer.write(name, source.readF32(name));
  writer.commit();
  source.close();
  const shards = readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
  assert.ok(shards.length >= 2, `${shards.length} shards`);
  return shards;
}

const INDEX = 'model.safetensors.index.json';

/** the folder checkpoint in the drop folder with every file but its last shard; returns that shard's bytes */
function folderWithoutLastShard(work: string, model: string, folder: string): { name: string; bytes: Buffer } {
  const staged = join(work, 'staged');
  const shards = writeShards(model, staged);
  mkdirSync(folder);
  for (const f of [INDEX, ...shards.slice(0, -1)]) copyFileSync(join(staged, f), join(folder, f));
  const name = shards.at(-1)!;
  return { name, bytes: readFileSync(join(staged, name)) };
}

const sizeOf = (folder: string, names: string[]) => names.reduce((n, f) => n + statSync(join(folder, f)).size, 0);

test('waiting entries show in status (JSON and table), the log and cmerge_intake_waiting until taken; the config timeout wins over the flag', async () => {
  const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-waiting-', 3);
  const config = writeConfig(
    join(work, 'cmerge.yaml'),
    state,
    [{ ...pipeline, intake: { incomplete_timeout_s: 60 } }],
    {
      metrics_port: 0,
    },
  );
  // DaemonProc passes --incomplete-timeout 2: the pipeline's 60 s must win
  const d = new DaemonProc(config);
  try {
    await d.ready();
    const full = readFileSync(models.tasks[0]!);
    const cut = Math.floor(full.length * 0.6);
    writeFileSync(join(drop, 'truncated.safetensors'), full.subarray(0, cut));
    const second = readFileSync(models.tasks[1]!);
    writeFileSync(join(drop, 'four-bytes.safetensors'), second.subarray(0, 4));
    const folder = join(drop, 'sharded');
    const last = folderWithoutLastShard(work, models.tasks[2]!, folder);
    const folderSize = sizeOf(folder, readdirSync(folder));

    await waitUntil(() => status(config).pipelines[0]!.waiting.length === 3, 20_000, 'three entries waiting');
    await sleep(3_000); // past the flag's 2 s
    const st = status(config).pipelines[0]!;
    assert.deepEqual(st.rejected, [], 'nothing rejected after the flag timeout: the config says 60 s');
    const waiting = [...st.waiting].sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(
      waiting.map((w) => [w.name, w.size, w.expected_size, w.reason]),
      [
        ['four-bytes.safetensors', 4, null, 'growing'],
        ['sharded', folderSize, null, 'missing_shard'],
        ['truncated.safetensors', cut, full.length, 'growing'],
      ],
    );
    for (const w of waiting) {
      assert.ok(Date.parse(w.since) <= Date.parse(w.last_change), `${w.name}: since ${w.since}`);
      assert.ok(Date.now() - Date.parse(w.since) < 60_000, `${w.name}: since ${w.since}`);
    }
    const gauge = 'cmerge_intake_waiting{pipeline="clip"}';
    assert.ok((await metricsText(d)).split('\n').includes(`${gauge} 3`), `${gauge} 3`);

    const text = cmerge(['status', '--config', config]);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^PIPELINE\s+VERSION\s+QUEUED\s+MERGING\s+REJECTED\s+WAITING\nclip\s.*\s3\n/);
    assert.match(text.stdout, /^clip: waiting for incomplete entries$/m);
    assert.match(
      text.stdout,
      new RegExp(`^  truncated.safetensors: still growing, ${cut} of ${full.length} bytes, since `, 'm'),
    );
    assert.match(text.stdout, /^ {2}sharded: missing shard, \d+ bytes, since /m);
    // once each, however many times the daemon looked at them
    assert.equal(d.messages(/^waiting for truncated\.safetensors: still growing/).length, 1, d.tail());
    assert.equal(d.messages(/^waiting for sharded: missing shard/).length, 1, d.tail());

    appendFileSync(join(drop, 'truncated.safetensors'), full.subarray(cut));
    appendFileSync(join(drop, 'four-bytes.safetensors'), second.subarray(4));
    writeFileSync(join(folder, last.name), last.bytes);
    await waitForVersion(repo, 'clip', 3, 60_000, d);
    const after = status(config).pipelines[0]!;
    assert.deepEqual(after.waiting, []);
    assert.deepEqual(after.rejected, []);
    assert.equal(manifest(repo, 'clip', 3).checkpoints.length, 3);
    assert.ok((await metricsText(d)).split('\n').includes(`${gauge} 0`), `${gauge} 0`);
    for (const name of ['truncated.safetensors', 'four-bytes.safetensors', 'sharded'])
      assert.equal(d.messages(new RegExp(`^${name.replace('.', '\\.')} is complete after waiting \\d+ s`)).length, 1);
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});

test('a restart does not restart the incomplete timeout: it counts from the last change recorded before', async () => {
  const { work, models, drop, state, pipeline } = workspace('cmerge-daemon-waiting-restart-', 1);
  const timeoutS = 8;
  const config = writeConfig(join(work, 'cmerge.yaml'), state, [
    { ...pipeline, intake: { incomplete_timeout_s: timeoutS } },
  ]);
  let d = new DaemonProc(config);
  try {
    await d.ready();
    const full = readFileSync(models.tasks[0]!);
    const writtenAt = Date.now();
    writeFileSync(join(drop, 'truncated.safetensors'), full.subarray(0, full.length >> 1));
    await waitUntil(() => status(config).pipelines[0]!.waiting.length === 1, 10_000, 'the entry waits');
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
    // recorded while no daemon runs: status still shows it
    const before = status(config).pipelines[0]!.waiting;
    assert.equal(before.length, 1);
    await sleep(1_000);

    d = new DaemonProc(config);
    await d.ready();
    const readyAt = Date.now();
    await waitUntil(() => status(config).pipelines[0]!.rejected.length === 1, 20_000, 'rejected');
    // when the daemon rejected it (its record), not when this poll saw it: a CLI run per poll is slow under load
    const rejectedAt = Date.parse(
      (status(config).pipelines[0]!.rejected[0] as unknown as { rejected_at: string }).rejected_at,
    );
    assert.ok(rejectedAt - writtenAt >= timeoutS * 1000, `rejected ${rejectedAt - writtenAt} ms after the write`);
    // from zero at the restart it would take ≥ timeoutS after ready
    assert.ok(
      rejectedAt - readyAt < (timeoutS - 2) * 1000,
      `rejected ${rejectedAt - readyAt} ms after the restart; log:\n${d.tail()}`,
    );
    const st = status(config).pipelines[0]!;
    assert.deepEqual(st.waiting, []);
    assert.match(st.rejected[0]!.reason, /truncat|short|size|end/i);
    assert.equal(
      d.messages(new RegExp(`^waiting for truncated\\.safetensors \\(since ${before[0]!.since}\\)`)).length,
      1,
    );
    // the log line may come after the row status reads
    await d.waitFor(/^rejected truncated\.safetensors: /);
    assert.equal(d.messages(/^truncated\.safetensors is still incomplete .*taking it to be rejected$/).length, 1);
    assert.ok(existsSync(join(drop, '.quarantine', 'truncated.safetensors')));
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});

test('slow writers that pause less than the timeout are never rejected, however long they write: a file, and a shard written as .part in its folder', async () => {
  const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-waiting-slow-', 2);
  const timeoutS = 3;
  const config = writeConfig(join(work, 'cmerge.yaml'), state, [
    { ...pipeline, intake: { incomplete_timeout_s: timeoutS } },
  ]);
  const d = new DaemonProc(config);
  try {
    await d.ready();
    const file = readFileSync(models.tasks[0]!);
    const folder = join(drop, 'sharded');
    const last = folderWithoutLastShard(work, models.tasks[1]!, folder);
    const part = join(folder, `.${last.name}.part`);
    const steps = 10; // 1 s apart: more than three times the timeout in all
    const piece = (bytes: Buffer, i: number) =>
      bytes.subarray(Math.floor((bytes.length * i) / steps), Math.floor((bytes.length * (i + 1)) / steps));
    const t0 = Date.now();
    for (let i = 0; i < steps; i++) {
      appendFileSync(join(drop, 'slow.safetensors'), piece(file, i));
      appendFileSync(part, piece(last.bytes, i));
      await sleep(1_000);
    }
    assert.ok(Date.now() - t0 > 3 * timeoutS * 1000);
    assert.deepEqual(d.messages(/^rejected /), [], 'nothing rejected while the writers were going');
    renameSync(part, join(folder, last.name));
    await waitForVersion(repo, 'clip', 2, 30_000, d);
    assert.deepEqual(status(config).pipelines[0]!.rejected, []);
    assert.deepEqual(
      manifest(repo, 'clip', 2)
        .checkpoints.map((c) => c.name)
        .sort(),
      ['sharded', 'slow.safetensors'],
    );
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }
});

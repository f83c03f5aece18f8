/**
 * PEFT LoRA adapter folders in the drop folder (docs/lora.md): taken once adapter_config.json and
 * adapter_model.safetensors are both complete and settled, hashed over both files, checked against
 * the pipeline's base (refusals quarantined with their reason, the folder kept), recorded in
 * SQLite as an adapter; end to end, the published version's manifest, model card, `show --json`
 * and `history --json` say so. The intake runs in-process on a manual clock (as intake.test.ts);
 * the end-to-end case runs a real daemon.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openModel } from '../../src/io/model.js';
import { beginVersion, finishVersion, readManifest, verifyVersion } from '../../src/publish/index.js';
import { openStore, type AdapterRecord, type Checkpoint } from '../../src/store/index.js';
import { cmerge } from '../helpers/cli.js';
import { loraFixture, tempDir } from '../helpers/paths.js';
import { intakeRig, tickUntil, SETTLE, TICK, type Rig } from './intake-rig.js';
import { DaemonProc, history, manifest, waitForVersion, waitUntil, writeConfig } from './support.js';

const BASE = loraFixture('tiny-llama');
const CONFIG = 'adapter_config.json';
const WEIGHTS = 'adapter_model.safetensors';

/** A drop folder whose pipeline's base is the tiny Llama the adapter fixtures were trained on. */
const rig = (prefix: string): Promise<Rig> => intakeRig(prefix, BASE);

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/**
 * The rule, computed independently: sha256 over one line `<name>\0<sha256 of the file>\n` for
 * adapter_config.json, then adapter_model.safetensors.
 */
function adapterSha256(dir: string): string {
  const lines = [CONFIG, WEIGHTS].map((f) => `${f}\0${sha256(readFileSync(join(dir, f)))}\n`);
  return sha256(lines.join(''));
}

/** What the store should record for fixture `name`: from its config and its factor tensors. */
function expectedRecord(name: string): AdapterRecord {
  const dir = loraFixture(name);
  const cfg = JSON.parse(readFileSync(join(dir, CONFIG), 'utf8')) as Record<string, unknown>;
  const weights = openModel(join(dir, WEIGHTS));
  const targets = [...weights.tensors.keys()].filter((t) => /\.lora_(A\.weight|embedding_A)$/.test(t)).length;
  weights.close();
  return {
    r: cfg.r as number,
    alpha: cfg.lora_alpha as number,
    use_rslora: cfg.use_rslora === true,
    target_tensors: targets,
    target_modules: cfg.target_modules as string[],
    modules_to_save: (cfg.modules_to_save as string[] | null) ?? [],
    config_sha256: sha256(readFileSync(join(dir, CONFIG))),
    weights_sha256: sha256(readFileSync(join(dir, WEIGHTS))),
  };
}

/** A whole folder arriving at once: copied under a dot name, then renamed into the drop folder. */
function dropFolder(src: string, drop: string, name: string): string {
  const part = join(drop, `.${name}.part`);
  cpSync(src, part, { recursive: true });
  renameSync(part, join(drop, name));
  return join(drop, name);
}

test('an adapter folder copied file by file is taken once both files are complete and settled, not before', async () => {
  const r = await rig('cmerge-lora-intake-');
  try {
    const src = loraFixture('plain');
    const folder = join(r.drop, 'task-a');
    mkdirSync(folder);
    writeFileSync(join(folder, CONFIG), readFileSync(join(src, CONFIG)));
    await waitUntil(() => r.intake.pending === 1, 10_000, 'the watcher names the new folder');
    await r.elapse(5_000);
    assert.equal(r.queued + r.rejected, 0, 'adapter_config.json alone: waits for the weights');

    const weights = readFileSync(join(src, WEIGHTS));
    writeFileSync(join(folder, WEIGHTS), weights.subarray(0, weights.length >> 1));
    await r.elapse(5_000);
    assert.equal(r.queued + r.rejected, 0, 'weights still being written: waits');
    assert.equal(r.store.findByPath('clip', folder), null);

    appendFileSync(join(folder, WEIGHTS), weights.subarray(weights.length >> 1));
    await r.elapse(TICK);
    const completeSeen = r.clock.now();
    await r.elapse(SETTLE - 2 * TICK);
    assert.equal(r.queued, 0, 'not taken before the settle window has passed');
    const takenAt = await tickUntil(r, () => r.queued > 0, 5 * TICK, 'the adapter is queued');
    assert.ok(takenAt - completeSeen >= SETTLE, `taken ${takenAt - completeSeen} ms after it was complete`);
    assert.equal(r.rejected, 0, JSON.stringify(r.store.rejected('clip')));

    const row = r.store.findByPath('clip', folder)!;
    assert.equal(row.status, 'queued');
    assert.equal(row.name, 'task-a');
    assert.equal(row.sha256, adapterSha256(src), 'the sha256 covers both files (the documented rule)');
    assert.equal(row.size, weights.length + readFileSync(join(src, CONFIG)).length);
    assert.deepEqual(row.adapter, expectedRecord('plain'));
    assert.equal(row.adapter!.target_tensors, 4, 'q_proj and v_proj of 2 layers');
    // the fixture names its base "tiny-llama", which cmerge cannot compare with the base folder
    assert.ok(
      r.logs.some((l) => l.level === 'warn' && l.message.includes(folder) && /tiny-llama/.test(l.message)),
      `openAdapter's warning is logged: ${JSON.stringify(r.logs)}`,
    );

    // later ticks and listings do not take it again
    await r.elapse(10_000);
    assert.equal(r.queued, 1, 'queued exactly once');
  } finally {
    await r.close();
  }
});

test('weights first, then adapter_config.json: taken once the config has come and settled', async () => {
  const r = await rig('cmerge-lora-intake-order-');
  try {
    const src = loraFixture('rslora');
    const folder = join(r.drop, 'task-b');
    mkdirSync(folder);
    writeFileSync(join(folder, WEIGHTS), readFileSync(join(src, WEIGHTS)));
    await waitUntil(() => r.intake.pending === 1, 10_000, 'the watcher names the new folder');
    await r.elapse(5_000);
    assert.equal(r.queued + r.rejected, 0, 'weights without adapter_config.json: not a checkpoint yet');
    writeFileSync(join(folder, CONFIG), readFileSync(join(src, CONFIG)));
    await tickUntil(r, () => r.queued + r.rejected > 0, SETTLE + 20 * TICK, 'the adapter is taken');
    assert.equal(r.rejected, 0, JSON.stringify(r.store.rejected('clip')));
    const row = r.store.findByPath('clip', folder)!;
    assert.equal(row.sha256, adapterSha256(src));
    assert.deepEqual(row.adapter, expectedRecord('rslora'));
    assert.equal(row.adapter!.use_rslora, true);
  } finally {
    await r.close();
  }
});

test('refused adapters are quarantined with their reason recorded, the folder kept', async () => {
  const r = await rig('cmerge-lora-intake-refuse-');
  try {
    const kinds = new Map<string, RegExp>([
      ['dora', /adapter_config\.json: DoRA adapters \(use_dora\) are not supported/],
      ['bin', /adapter_model\.bin \(pickle\) is refused/],
      ['shape-mismatch', /adapter_model\.safetensors: module .*q_proj.*shape mismatch/],
    ]);
    for (const name of kinds.keys()) dropFolder(loraFixture(`refuse/${name}`), r.drop, name);
    await tickUntil(r, () => r.rejected === kinds.size, SETTLE + 30 * TICK, 'every refusal is rejected');
    assert.equal(r.queued, 0);

    const quarantine = join(r.drop, '.quarantine');
    for (const [name, reason] of kinds) {
      const row: Checkpoint = r.store.rejected('clip').find((c) => c.name === name)!;
      assert.ok(row, `${name} is recorded`);
      assert.equal(row.status, 'rejected');
      assert.match(row.reason!, reason);
      assert.equal(row.adapter, null, 'a refused adapter has no adapter record');
      assert.equal(row.quarantine_path, join(quarantine, name));
      assert.ok(!existsSync(join(r.drop, name)), `${name} left the drop folder`);
      const src = loraFixture(`refuse/${name}`);
      for (const f of readdirSync(src))
        assert.deepEqual(readFileSync(join(quarantine, name, f)), readFileSync(join(src, f)), `${name}/${f} kept`);
      assert.ok(readFileSync(join(quarantine, `${name}.reason.txt`), 'utf8').includes(row.reason!));
      assert.ok(r.logs.some((l) => l.level === 'warn' && l.message === `rejected ${name}: ${row.reason}`));
    }
  } finally {
    await r.close();
  }
});

test('a version whose checkpoints include an adapter: the manifest records it, the model card lists it', async () => {
  const root = tempDir('cmerge-lora-publish-');
  const staging = await beginVersion(join(root, 'repo'), 'clip', 2);
  writeFileSync(join(staging.dir, 'model.safetensors'), readFileSync(join(BASE, 'model.safetensors')));
  const record = expectedRecord('modules-to-save');
  const full = { name: 'full.safetensors', sha256: 'f'.repeat(64), merged_at: '2030-01-01T00:00:00.000Z' };
  const lora = { name: 'adapter-2', sha256: 'e'.repeat(64), merged_at: '2030-01-02T00:00:00.000Z', adapter: record };
  const v = await finishVersion(staging, {
    parent: 1,
    method: 'opcm',
    params: { alpha: 0.5 },
    base: { path: BASE, sha256: 'b'.repeat(64) },
    checkpoints: [full, lora],
    engine: 'portable',
  });
  const m = await readManifest(v.dir);
  assert.deepEqual(m.checkpoints, [full, lora], 'a full checkpoint has no adapter key, the adapter its record');
  assert.deepEqual(Object.keys(m.checkpoints[1]), ['name', 'sha256', 'merged_at', 'adapter']);
  assert.deepEqual(await verifyVersion(v.dir), []);
  const card = readFileSync(join(v.dir, 'README.md'), 'utf8');
  assert.match(card, /## LoRA adapters \(1\)/);
  const rows = card.split('\n').filter((l) => /^\| \d+ \| /.test(l) && l.includes('adapter-2'));
  const row = rows.find((l) => l.includes('lm_head'));
  assert.ok(row, `the adapter's row names its saved module:\n${card}`);
  assert.ok(
    row.startsWith(`| 2 | adapter-2 | ${record.r} | ${record.alpha} | q_proj | lm_head | ${record.target_tensors} |`),
  );
  assert.ok(row.includes(record.config_sha256) && row.includes(record.weights_sha256));
  assert.ok(!card.split('\n').some((l) => l.includes('full.safetensors') && l.includes('lora')));
});

interface ShowCheckpoint {
  step: number;
  name: string;
  sha256: string;
  adapter: AdapterRecord | null;
}

test('end to end: the adapter is merged, and the store, show/history --json, manifest and model card record it', async () => {
  const work = tempDir('cmerge-lora-daemon-');
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [
    { base: BASE, drop, repository: repo, settle_ms: 200 },
  ]);
  const d = new DaemonProc(config);
  try {
    await d.ready();
    dropFolder(loraFixture('seq-1'), drop, 'seq-1');
    // published, or rejected (a merge runner that cannot read adapters yet): say which at once
    await Promise.race([
      waitForVersion(repo, 'clip', 1, 60_000, d),
      d.waitFor(/^rejected seq-1/, 60_000).then((l) => assert.fail(`the adapter was not merged: ${l.message}`)),
    ]);
    const expected = expectedRecord('seq-1');
    const sha = adapterSha256(loraFixture('seq-1'));

    const m = manifest(repo, 'clip', 1);
    assert.equal(m.checkpoints.length, 1);
    assert.deepEqual(m.checkpoints[0], { ...m.checkpoints[0], name: 'seq-1', sha256: sha, adapter: expected });

    const card = readFileSync(join(repo, 'clip', '1', 'README.md'), 'utf8');
    assert.match(card, /## LoRA adapters \(1\)/);
    const row = card.split('\n').find((l) => l.startsWith('| 1 | seq-1 | 4 | 8 |'));
    assert.ok(row, `the card lists the adapter with r and alpha:\n${card}`);
    assert.ok(row.includes('q_proj') && row.includes('v_proj'), 'and its target modules');
    assert.ok(row.includes(expected.config_sha256) && row.includes(expected.weights_sha256), 'and both sha256s');

    const shown = cmerge(['show', '--config', config, 'clip', '1', '--json']);
    assert.equal(shown.status, 0, shown.stderr);
    const checkpoints = (JSON.parse(shown.stdout) as { checkpoints: ShowCheckpoint[] }).checkpoints;
    assert.deepEqual(
      checkpoints.map((c) => [c.step, c.name, c.sha256, c.adapter]),
      [[1, 'seq-1', sha, expected]],
    );
    const h = history(config) as unknown as { checkpoint: string; adapter: AdapterRecord | null }[];
    assert.deepEqual(
      h.map((e) => [e.checkpoint, e.adapter]),
      [['seq-1', expected]],
    );

    await d.stop();
    const store = openStore(join(work, 'state', 'cmerge.sqlite'), { readonly: true });
    try {
      const merged = store.mergedCheckpoints('clip');
      assert.deepEqual(
        merged.map((c) => [c.name, c.sha256, c.adapter]),
        [['seq-1', sha, expected]],
      );
    } finally {
      store.close();
    }
  } finally {
    await d.kill();
  }
});

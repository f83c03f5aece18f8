import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import { DaemonProc, dropFile, status, waitForVersion, waitUntil, workspace, writeConfig } from './support.js';

/**
 * What people drop instead of safetensors: PyTorch pickle files (.bin, .pt, .pth, .ckpt) and model
 * folders without weights cmerge reads. A real daemon quarantines each with a reason naming the
 * file and saying why (pickle is never loaded) and what to do (the conversion; what a folder
 * must hold), and `cmerge merge` says the same on its one stderr line. Good checkpoints keep merging.
 */
const PICKLE = [
  /pickle/,
  /not loaded, for safety/,
  /save_file\(torch\.load\(/,
  /save_pretrained\(.*safe_serialization=True\)/,
];
const EXPECTED = [/model\.safetensors/, /model\.safetensors\.index\.json/, /adapter_config\.json/, /PEFT adapter/];

/** entry name → what its reason must say */
const cases: Record<string, RegExp[]> = {
  'x.bin': [...PICKLE, /'x\.bin'/, /'x\.safetensors'/],
  'model.pt': [...PICKLE, /'model\.pt'/],
  'lightning.ckpt': [...PICKLE, /'lightning\.ckpt'/],
  'hf-pytorch': [...PICKLE, ...EXPECTED, /folder hf-pytorch/, /pytorch_model\.bin/, /'model\.safetensors'/],
  'no-weights': [...EXPECTED, /folder no-weights holds no weights/, /config\.json/, /README\.md/],
};

/** the entries, made under `dir` (pickle bytes: torch.save's zip magic, enough to be recognized by name) */
function makeEntries(dir: string): void {
  for (const name of ['x.bin', 'model.pt', 'lightning.ckpt']) writeFileSync(join(dir, name), 'PK\x03\x04 pickled');
  mkdirSync(join(dir, 'hf-pytorch'));
  writeFileSync(join(dir, 'hf-pytorch', 'config.json'), '{}');
  writeFileSync(join(dir, 'hf-pytorch', 'pytorch_model.bin'), 'PK\x03\x04 pickled');
  mkdirSync(join(dir, 'no-weights'));
  writeFileSync(join(dir, 'no-weights', 'config.json'), '{}');
  writeFileSync(join(dir, 'no-weights', 'README.md'), '# a model card\n');
}

function assertSays(reason: string, patterns: RegExp[], what: string): void {
  for (const p of patterns) assert.match(reason, p, `${what}: ${reason}`);
}

test('pickle files and folders without weights: the daemon quarantines them and cmerge merge refuses them, saying why and what to do', async (t) => {
  const { work, models, drop, repo, state, pipeline } = workspace('cmerge-daemon-pickle-', 1);
  const config = writeConfig(join(work, 'cmerge.yaml'), state, [pipeline]);
  const staged = join(work, 'staged');
  mkdirSync(staged);
  makeEntries(staged);
  const d = new DaemonProc(config); // incomplete timeout 2 s: a folder without weights waits that long
  try {
    await d.ready();
    for (const name of Object.keys(cases)) renameSync(join(staged, name), join(drop, name));
    dropFile(models.tasks[0]!, drop);
    await waitForVersion(repo, 'clip', 1, 30_000, d);
    const names = Object.keys(cases);
    await waitUntil(() => status(config).pipelines[0]!.rejected.length === names.length, 30_000, 'all rejected');
    const rejected = status(config).pipelines[0]!.rejected;
    assert.deepEqual(rejected.map((r) => r.name).sort(), [...names].sort());
    for (const r of rejected) {
      t.diagnostic(`${r.name}: ${r.reason}`);
      assertSays(r.reason, cases[r.name]!, r.name);
      assertSays(readFileSync(join(drop, '.quarantine', `${r.name}.reason.txt`), 'utf8'), cases[r.name]!, r.name);
    }
    assert.equal((await d.stop('SIGTERM')).code, 0, d.tail());
  } finally {
    await d.kill();
  }

  // the same entries given to cmerge merge: exit 1, one line naming the path, the same reason
  const cli = join(work, 'cli');
  mkdirSync(cli);
  makeEntries(cli);
  for (const [name, patterns] of Object.entries(cases)) {
    const path = join(cli, name);
    const r = cmerge([
      'merge',
      '--base',
      models.base,
      '--state',
      join(work, 'cli-state'),
      '--method',
      'opcm',
      '--out',
      join(work, 'out.safetensors'),
      path,
    ]);
    assert.equal(r.status, 1, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.startsWith(`cmerge: ${path}: `), lines[0]);
    assertSays(lines[0]!, patterns, `cmerge merge ${name}`);
  }
});

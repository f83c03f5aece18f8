import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

/**
 * `cmerge merge` refuses the same content (sha256) twice in one lineage, as the daemon's intake
 * does: given twice in one call, or already merged into the state. Exit 1, one line naming the
 * file and the reason, state and output untouched.
 */
const work = tempDir();
const state = join(work, 'state');
const out = join(work, 'merged.safetensors');
let models: { base: string; tasks: string[] };

const merge = (o: string, ...ckpts: string[]) =>
  cmerge(['merge', '--base', models.base, '--state', state, '--method', 'opcm', '--out', o, '--json', ...ckpts]);

function snapshot(): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(p).update(readFileSync(p));
    }
  };
  walk(state);
  return h.update(readFileSync(out)).digest('hex');
}

const sha256sum = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function stateCheckpoints(): { name: string; sha256?: string }[] {
  const gen = readFileSync(join(state, 'CURRENT'), 'utf8').trim();
  return (JSON.parse(readFileSync(join(state, gen, 'state.json'), 'utf8')) as { checkpoints: [] }).checkpoints;
}

function assertRefused(r: ReturnType<typeof merge>, file: string, reason: RegExp, before: string): void {
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got: ${r.stderr}`);
  assert.ok(lines[0].includes(file), `names the file: ${lines[0]}`);
  assert.match(lines[0], reason);
  assert.equal(r.stdout, '');
  assert.equal(snapshot(), before, 'state and output untouched');
}

describe('cmerge merge refuses a checkpoint merged twice', () => {
  before(() => {
    models = writeDemoModels(join(work, 'models'), 3, { d: 16, layers: 1, seed: 3 });
    const r = merge(out, models.tasks[0]);
    assert.equal(r.status, 0, r.stderr);
  });

  test("the state records each checkpoint's sha256", () => {
    assert.deepEqual(
      stateCheckpoints().map((c) => c.sha256),
      [sha256sum(models.tasks[0])],
    );
  });

  test('the same checkpoint twice in one call (under another name): refused, nothing written', () => {
    const copy = join(work, 'copy-of-task-1.safetensors');
    copyFileSync(models.tasks[1], copy);
    const before = snapshot();
    const other = join(work, 'other.safetensors');
    const r = merge(other, models.tasks[1], copy);
    assertRefused(
      r,
      copy,
      new RegExp(`duplicate: same sha256 as ${models.tasks[1]}, given earlier in this call`),
      before,
    );
    assert.ok(!existsSync(other), 'no output');
  });

  test('a checkpoint the state already holds (under another name): refused, nothing written', () => {
    const copy = join(work, 'again.safetensors');
    copyFileSync(models.tasks[0], copy);
    const before = snapshot();
    const r = merge(out, copy);
    assertRefused(
      r,
      copy,
      /duplicate: same sha256 as task_0\.safetensors, already merged into the state \(step 1\)/,
      before,
    );
  });

  test('a new checkpoint still merges afterwards, and its sha256 joins the lineage', () => {
    const r = merge(out, models.tasks[1], models.tasks[2]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).step, 3);
    assert.deepEqual(
      stateCheckpoints().map((c) => c.sha256),
      models.tasks.map(sha256sum),
    );
  });
});

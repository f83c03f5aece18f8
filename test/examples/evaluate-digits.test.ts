import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { evaluateModel } from '../../src/demo/digits/evaluate.js';
import { loadWeights, saveWeights } from '../../src/demo/digits/model.js';
import { buildZoo, type Zoo } from '../../src/demo/digits/zoo.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

/** The evaluator contract (docs/evaluator.md), checked on the example program as the daemon runs it. */
const evaluator = join(repoRoot, 'dist', 'examples', 'evaluate-digits.js');
const run = (...args: string[]) => spawnSync(process.execPath, [evaluator, ...args], { encoding: 'utf8' });

const tiny = {
  tasks: ['rot45', 'parity'],
  widths: [16],
  samples: 300,
  jitterCopies: 0,
  pretrain: { epochs: 1, lr: 3e-3, batch: 50, seed: 1 },
  finetune: { epochs: 1, lr: 3e-3, batch: 50, seed: 3 },
};
let zoo: Zoo;

test('setup: a tiny base and two fine-tuned models', async () => {
  zoo = await buildZoo(join(tempDir(), 'models'), tiny);
  assert.equal(zoo.checkpoints.length, 2);
});

test('given a version folder it prints one JSON object {task: accuracy} for every head the model has, exit 0', async () => {
  const version = join(tempDir(), '7');
  mkdirSync(version);
  saveWeights(join(version, 'model.safetensors'), loadWeights(zoo.checkpoints[1]!.path));
  const r = run(version);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const scores = JSON.parse(lines.at(-1)!) as Record<string, number>;
  assert.deepEqual(Object.keys(scores), ['rot45', 'parity']);
  for (const v of Object.values(scores)) assert.ok(v >= 0 && v <= 1, String(v));
  assert.deepEqual(scores, await evaluateModel(version), 'the same as evaluating in process');
  assert.equal(scores.parity, zoo.finetunedAccuracy.parity, "the fine-tuned model's own score from training");
});

test('a model file works too; the base scores what the zoo recorded as the lower bound', () => {
  const r = run(zoo.base);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!), zoo.baseAccuracy);
});

test('failures exit non-zero with one line on stderr and nothing on stdout', () => {
  const empty = tempDir();
  const noModel = run(empty);
  assert.equal(noModel.status, 1);
  assert.match(noModel.stderr, /not a checkpoint/);
  assert.equal(noModel.stdout, '');

  const headless = join(tempDir(), 'headless.safetensors');
  const w = loadWeights(zoo.base);
  for (const name of [...w.keys()]) if (name.startsWith('heads.')) w.delete(name);
  saveWeights(headless, w);
  const noHead = run(headless);
  assert.equal(noHead.status, 1);
  assert.match(noHead.stderr, /no task head \(heads\.<task>\.weight\)/);

  const broken = join(tempDir(), 'broken.safetensors');
  writeFileSync(broken, 'not a model');
  assert.equal(run(broken).status, 1);
  assert.equal(run().status, 2, 'no argument: usage');
});

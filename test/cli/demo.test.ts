import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openStore } from '../../src/store/index.js';
import { DB_FILE_NAME } from '../../src/config/index.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

/** Cells of a table row after its label: numbers, or · for a task not merged yet. */
function cells(line: string): string[] {
  return line.slice(18).trim().split(/\s+/);
}

test('cmerge demo trains real digit models, the daemon merges and evaluates each version, and the table shows the stored accuracies', () => {
  const dir = tempDir();
  const r = cmerge(['demo', '--dir', dir, '--tasks', '2', '--method', 'task_arithmetic']);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  // log_level warn holds in the merge worker thread too (it logged the engine at info before)
  assert.doesNotMatch(r.stdout, /"level":"info"/);
  const lines = r.stdout.split('\n');
  const row = (label: string) => lines.find((l) => l.startsWith(label)) ?? assert.fail(`no row ${label}:\n${r.stdout}`);
  assert.match(row('model'), /^model\s+rot45\s+rot315\s+ACC\s+BWT$/);
  const base = cells(row('base (lower bound)')).map(Number);
  const tuned = cells(row('each fine-tuned')).map(Number);
  for (let i = 0; i < 2; i++)
    assert.ok(tuned[i]! > base[i]! + 10, `fine-tuning helps task ${i}: ${base[i]} → ${tuned[i]}`);

  const store = openStore(join(dir, 'state', DB_FILE_NAME), { readonly: true });
  try {
    const summary = store.accuracySummary('digits');
    assert.deepEqual(summary.tasks, ['rot45', 'rot315']);
    assert.equal(summary.steps.length, 2, 'the daemon evaluated both versions');
    const [v1, v2] = [cells(row('v1 + rot45')), cells(row('v2 + rot315'))];
    assert.equal(v1[0], (100 * summary.matrix[0]![0]!).toFixed(1));
    assert.equal(v1[1], '·');
    assert.deepEqual(
      v2.slice(0, 2),
      summary.matrix[1]!.map((x) => (100 * x!).toFixed(1)),
    );
    assert.equal(v2[2], (100 * summary.average_accuracy!).toFixed(1), 'ACC');
    assert.equal(Number(v2[3]), Number((100 * summary.bwt!).toFixed(1)), 'BWT');
  } finally {
    store.close();
  }
  assert.deepEqual(readdirSync(join(dir, 'drop', '.quarantine')).sort(), [
    'broken.safetensors',
    'broken.safetensors.reason.txt',
  ]);
  assert.ok(existsSync(join(dir, 'models-published', 'digits', '2', 'model.safetensors')));
});

test('cmerge demo refuses a bad --tasks or --method with a usage error before training', () => {
  const r = cmerge(['demo', '--tasks', '1']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--tasks must be an integer from 2 to 8/);
  assert.match(cmerge(['demo', '--method', 'nope']).stderr, /unknown method nope/);
});

test('cmerge demo refuses a non-empty --dir that holds no earlier demo, and leaves it as it was', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'notes.txt'), 'mine\n');
  const r = cmerge(['demo', '--dir', dir, '--tasks', '2']);
  assert.equal(r.status, 2, r.stderr + r.stdout);
  assert.match(r.stderr, /is not empty and holds no earlier demo/);
  assert.deepEqual(readdirSync(dir), ['notes.txt']);
});

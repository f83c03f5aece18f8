/**
 * Config problems as the real CLI reports them: every problem of a config in one run, one line
 * each, naming the file and key path, the nearest known key for an unknown one, and the value of a
 * path that does not exist; checked by every command that reads the config.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const config = (method: string) => `state_dir: ./state
pipelines:
  - name: clip
    base: ./missing-base.safetensors
    drop: ./drop
    repository: ./models
    ${method}
`;

/** The inspection commands: all load the config before opening the database. */
const COMMANDS = [['status'], ['history'], ['show', 'clip', '1'], ['verify']];

test('a typo and a missing base are both reported in one run, with did-you-mean and the path', () => {
  const dir = tempDir('cmerge-config-errors-');
  const file = join(dir, 'cmerge.yaml');
  writeFileSync(file, config('methd: opcm'));
  const base = join(dir, 'missing-base.safetensors');
  for (const cmd of COMMANDS) {
    const r = cmerge([...cmd, '--config', file]);
    assert.equal(r.status, 1, `${cmd[0]}: exit 1, as for any config error\n${r.stderr}`);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.ok(
      lines.includes(`cmerge: ${file}: pipelines[0].methd: unknown key (did you mean method?)`),
      `${cmd[0]}: the typo, named:\n${r.stderr}`,
    );
    assert.ok(lines.includes(`cmerge: ${file}: pipelines[0].base: ${base} does not exist`), r.stderr);
    assert.ok(
      lines.some((l) => l.startsWith(`cmerge: ${file}: pipelines[0].method: required`)),
      r.stderr,
    );
    assert.equal(lines.length, 3, r.stderr);
  }
});

test('status and history report a missing base, not "no database yet"', () => {
  const dir = tempDir('cmerge-config-nobase-');
  const file = join(dir, 'cmerge.yaml');
  writeFileSync(file, config('method: opcm'));
  for (const cmd of COMMANDS) {
    const r = cmerge([...cmd, '--config', file]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(
      r.stderr,
      `cmerge: ${file}: pipelines[0].base: ${join(dir, 'missing-base.safetensors')} does not exist\n`,
      cmd[0],
    );
  }
  // with the base there, the next problem is the database the daemon has not created yet
  writeFileSync(join(dir, 'missing-base.safetensors'), '');
  assert.match(cmerge(['status', '--config', file]).stderr, /cmerge\.sqlite: no database yet/);
  assert.ok(!existsSync(join(dir, 'state')), 'inspection creates nothing');
});

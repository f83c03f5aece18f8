import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { sha256File } from '../../src/util/hash.js';
import { tempDir } from '../helpers/paths.js';

test('sha256File agrees with sha256sum across chunk boundaries (0, 1, 1 MiB ± 1, 3.5 MiB)', async () => {
  const dir = tempDir('cmerge-hash-');
  const MiB = 1 << 20;
  for (const size of [0, 1, MiB - 1, MiB, MiB + 1, 2 * MiB, 3.5 * MiB]) {
    const path = join(dir, `f${size}`);
    writeFileSync(path, randomBytes(size));
    const expected = execFileSync('sha256sum', [path], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(await sha256File(path), expected, `${size} bytes`);
  }
});

test('sha256File of a missing file rejects with ENOENT', async () => {
  await assert.rejects(sha256File(join(tempDir('cmerge-hash-'), 'none')), { code: 'ENOENT' });
});

test('sha256File of a folder rejects (EISDIR), nothing left open', async () => {
  const open = () => readdirSync('/proc/self/fd').length;
  const before = open();
  await assert.rejects(sha256File(tempDir('cmerge-hash-')), { code: 'EISDIR' });
  assert.equal(open(), before, 'file descriptors open after the failure');
});

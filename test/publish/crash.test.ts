import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listVersions, readCurrent, recoverRepository, verifyVersion } from '../../src/publish/index.js';
import { tempDir } from '../helpers/paths.js';
import { makeBaseFolder } from './support.js';

const KILLS = 25;
// Same extension as this file: crash-child.ts under tsx, crash-child.js from dist/.
const childPath = fileURLToPath(
  new URL(`./crash-child${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`, import.meta.url),
);
const execArgv = process.execArgv.filter((a) => !a.startsWith('--test'));

/** Start a publishing child, let it run for a random time once ready, SIGKILL it. */
function runAndKill(repo: string, base: string, maxMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...execArgv, childPath, repo, base], {
      env: { ...process.env, CMERGE_CRASH_CHILD: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout!.once('data', () => setTimeout(() => child.kill('SIGKILL'), Math.random() * maxMs));
    child.on('error', reject);
    child.on('exit', (code, sig) =>
      sig === 'SIGKILL' ? resolve() : reject(new Error(`child exited on its own: ${code} ${sig}`)),
    );
  });
}

test(`publication survives ${KILLS} SIGKILLs at random moments`, { timeout: 240_000 }, async (t) => {
  const root = tempDir();
  const repo = join(root, 'repo');
  const base = makeBaseFolder(join(root, 'base'));
  const dir = join(repo, 'p');
  let killedMidStaging = 0;
  let published = 0;
  for (let i = 0; i < KILLS; i++) {
    await runAndKill(repo, base, 400);

    // The invariant must hold right after the crash, before any recovery.
    const names = existsSync(dir) ? readdirSync(dir) : [];
    if (names.some((n) => n.startsWith('.staging-'))) killedMidStaging++;
    const versions = await listVersions(repo, 'p');
    for (const v of versions) {
      assert.deepEqual(
        await verifyVersion(join(dir, String(v))),
        [],
        `kill ${i}: version ${v} is complete and verifies`,
      );
    }
    const current = await readCurrent(repo, 'p');
    if (names.includes('current')) {
      assert.ok(current !== null && versions.includes(current), `kill ${i}: current -> ${current} exists`);
    }
    published = Math.max(published, versions.at(-1) ?? 0);

    const r = await recoverRepository(repo, 'p');
    assert.deepEqual(r.broken, [], `kill ${i}: nothing broken`);
    // a kill before the first publication made the folder leaves none (the child says ready first)
    const after = existsSync(dir) ? readdirSync(dir) : [];
    assert.deepEqual(
      after.filter((n) => n.startsWith('.')),
      [],
      `kill ${i}: recovery left no dot entries`,
    );
    if (versions.length)
      assert.ok(
        r.currentAfter !== null && versions.includes(r.currentAfter),
        `kill ${i}: current valid after recovery`,
      );
    // Retention may be interrupted between rename and delete, never with more than keep+pins+current left over.
    assert.ok(versions.length <= 3 + 1 + 1 + 1, `kill ${i}: ${versions.length} versions kept`);
    if (versions.length > 1) assert.ok(versions.includes(1), `kill ${i}: pinned version 1 kept`);
  }
  assert.ok(published >= 5, `the children made progress (${published} versions)`);
  // Informative: proves kills landed inside publications, not only between them.
  assert.ok(killedMidStaging >= 3, `kills during staging: ${killedMidStaging}`);
  t.diagnostic(`${KILLS} kills, ${published} versions published, ${killedMidStaging} kills during staging`);
});

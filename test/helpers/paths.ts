import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, whether tests run from test/ (tsx) or dist/test/ (compiled). */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + dir);
    dir = up;
  }
  return dir;
})();

export const fixturesDir = join(repoRoot, 'test', 'fixtures');
export const cliPath = join(repoRoot, 'bin', 'cmerge.js');

const made: string[] = [];
process.on('exit', () => {
  if (!process.env.CMERGE_KEEP_TMP) for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the process exits unless CMERGE_KEEP_TMP is set. */
export function tempDir(prefix = 'cmerge-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** A folder of test/fixtures/lora (made with PEFT by test/fixtures/lora/make_lora_fixtures.py). */
export function loraFixture(name: string): string {
  return join(fixturesDir, 'lora', name);
}

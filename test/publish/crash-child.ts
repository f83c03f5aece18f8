/**
 * Child process for crash.test.ts: publishes versions in a loop until it is killed.
 * Does nothing unless CMERGE_CRASH_CHILD=1, because `node --test dist/test/` may pick it up.
 * argv: <repo> <baseFolder>
 */
import { applyRetention, listVersions } from '../../src/publish/index.js';
import { publish } from './support.js';

if (process.env.CMERGE_CRASH_CHILD === '1') {
  const [repo, base] = process.argv.slice(2) as [string, string];
  process.stdout.write('ready\n');
  for (;;) {
    const versions = await listVersions(repo, 'p');
    const n = (versions.at(-1) ?? 0) + 1;
    // Sizes vary so kills land in copying, hashing, fsync and rename alike.
    await publish(repo, 'p', n, {
      baseFolder: base,
      sharded: n % 3 === 0,
      weightBytes: 1024 + Math.floor(Math.random() * 1_500_000),
    });
    await applyRetention(repo, 'p', { keep: 3, pinned: [1] });
  }
}

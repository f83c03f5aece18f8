/**
 * Child process of wal.test.ts: a writer that holds the write lock with an uncommitted
 * transaction for `holdMs`, like the daemon in the middle of commitMerge on a slow disk.
 * usage: node --import tsx wal-child.ts <db> <holdMs>
 */
import { openStore } from '../../src/store/index.js';

const [dbPath, holdMs] = process.argv.slice(2) as [string, string];
const store = openStore(dbPath);
store.db
  .transaction(() => {
    store.enqueue('clip', { name: 'uncommitted', path: '/drop/uncommitted', sha256: 'b'.repeat(64), size: 2 });
    const head = store.nextQueued('clip')!;
    store.markMerging(head.id, { method: 'opcm', params: {} });
    process.stdout.write('locked\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(holdMs));
  })
  .immediate();
process.stdout.write('committed\n');
store.close();

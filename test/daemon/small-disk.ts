import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { after } from 'node:test';

/** Small real disks (tmpfs) for the tests of a full disk; unmounted when the test file ends. */

const mounted: string[] = [];
after(() => {
  for (const m of mounted) execFileSync('umount', ['-l', m]);
});

/** A 24 MiB tmpfs at `dir`, or why there cannot be one here. */
export function mountSmallDisk(dir: string): string | null {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', dir], { stdio: 'pipe' });
    mounted.push(dir);
    return null;
  } catch (e) {
    return `cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): ${(e as Error).message.split('\n')[0]}`;
  }
}

/** (Re)writes `filler` so that about `leave` bytes stay free on its disk, or fewer when the daemon writes meanwhile. */
export function leaveFree(filler: string, leave: number): void {
  rmSync(filler, { force: true });
  const fs = statfsSync(dirname(filler));
  let left = Math.max(0, fs.bavail * fs.bsize - leave);
  const chunk = Buffer.alloc(1 << 20);
  const fd = openSync(filler, 'w');
  try {
    while (left > 0) left -= writeSync(fd, chunk, 0, Math.min(chunk.length, left));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

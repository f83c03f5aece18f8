import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { writeDemoModels } from '../../src/demo/synth.js';
import { tempDir } from '../helpers/paths.js';
import { writeConfig } from './support.js';

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

/** A pipeline's folders and config for the tests of a full disk. */
export interface DiskSetup {
  work: string;
  base: string;
  tasks: string[];
  drop: string;
  repo: string;
  config: string;
}

/**
 * A pipeline `clip` whose repository is a small disk (mountSmallDisk): 2 demo tasks, a base folder
 * with a 6 MiB tokenizer.json that every version copies, the metrics server on, `room` as the
 * pipeline's room config; `filler` is where leaveFree takes the disk's space. A string: why there
 * cannot be one here.
 */
export function repositoryOnSmallDisk(
  prefix: string,
  seed: number,
  room: Record<string, unknown>,
): (DiskSetup & { filler: string }) | string {
  const work = tempDir(prefix);
  const repo = join(work, 'repo');
  const skip = mountSmallDisk(repo);
  if (skip) return skip;
  const models = writeDemoModels(join(work, 'models'), 2, { d: 64, layers: 2, seed });
  const base = join(work, 'base');
  mkdirSync(base);
  copyFileSync(models.base, join(base, 'model.safetensors'));
  writeFileSync(join(base, 'tokenizer.json'), Buffer.alloc(6 << 20, 0x20));
  const drop = join(work, 'drop');
  mkdirSync(drop);
  const config = writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [{ base, drop, repository: repo, room }], {
    metrics_port: 0,
  });
  return { work, base, tasks: models.tasks, drop, repo, config, filler: join(repo, 'filler') };
}

import { existsSync, renameSync, statSync } from 'node:fs';
import { cp, mkdir, rename, rm } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Logger } from 'winston';
import type { PipelineConfig } from '../config/index.js';
import type { Checkpoint, Store } from '../store/index.js';
import { fsyncDirSync } from '../util/fsync.js';

/**
 * Merged checkpoints leave the drop folder for the pipeline's archive (docs/operations.md,
 * "Merged checkpoints are archived"): the drop folder then holds only what is still to merge, a
 * name can be reused for the next fine-tune, and revert and rollback find the files they replay.
 * The target is recorded in SQLite before the move and the arrival after it, so a crash in
 * between is finished by the next call (at every start, before the intake runs).
 */
export async function archiveMerged(cfg: PipelineConfig, store: Store, log: Logger): Promise<void> {
  if (cfg.archive === null) return;
  for (const c of store.unarchived(cfg.name)) {
    try {
      await archiveOne(cfg.archive, c, store, log);
    } catch (e) {
      log.error(`archiving ${c.name} failed (tried again after the next merge and at start): ${(e as Error).message}`, {
        pipeline: cfg.name,
      });
    }
  }
}

async function archiveOne(dir: string, c: Checkpoint, store: Store, log: Logger): Promise<void> {
  let target = c.archive_path;
  if (target === null) {
    await mkdir(dir, { recursive: true });
    target = freeName(dir, c);
    store.setArchivePath(c.id, target);
  }
  if (existsSync(c.path) && !existsSync(target)) {
    const size = fileSize(c.path);
    if (size !== null && size !== c.size) {
      // not the merged file: another one dropped under its name while archiving was off
      log.warn(`${c.path} is not the merged ${c.name} any more (size changed): left in place, not archived`);
    } else {
      await move(c.path, target);
      log.info(`archived ${c.name}: ${target}`);
    }
  } else if (!existsSync(target)) {
    log.warn(`${c.name} is neither at ${c.path} nor at ${target}: a replay through it will be refused`);
  }
  store.markArchived(c.id);
}

/** `<dir>/<name>`, or `<dir>/<stem>-<id><ext>` when a checkpoint of the same name is archived already. */
function freeName(dir: string, c: Checkpoint): string {
  const plain = join(dir, c.name);
  if (!existsSync(plain)) return plain;
  const ext = extname(c.name);
  return join(dir, `${basename(c.name, ext)}-${c.id}${ext}`);
}

/** A file's bytes, as the intake recorded them; null for a folder (its record counts weight files only). */
function fileSize(path: string): number | null {
  const st = statSync(path);
  return st.isDirectory() ? null : st.size;
}

/**
 * A rename where it can be; across file systems a copy under a dot name, renamed into place,
 * then the original removed. Either way the checkpoint exists whole at one of the two places.
 */
async function move(from: string, to: string): Promise<void> {
  try {
    renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    const partial = join(to, '..', `.${basename(to)}.partial`);
    await rm(partial, { recursive: true, force: true });
    await cp(from, partial, { recursive: true, errorOnExist: true, force: false });
    await rename(partial, to);
    await rm(from, { recursive: true, force: true });
  }
  fsyncDirSync(join(to, '..'));
}

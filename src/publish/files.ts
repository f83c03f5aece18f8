import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST } from './layout.js';

/**
 * Every entry of a version folder, relative ('/' separated), sorted; manifest.json excluded.
 * Symlinks are reported as errors: a version must be self-contained, a link could point at a
 * file that changes or disappears after publication.
 */
export async function listVersionFiles(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  async function walk(abs: string, rel: string): Promise<void> {
    for (const name of (await readdir(abs)).sort()) {
      const relName = rel ? `${rel}/${name}` : name;
      if (!rel && name === MANIFEST) continue;
      const st = await lstat(join(abs, name));
      if (st.isDirectory()) {
        dirs.push(relName);
        await walk(join(abs, name), relName);
      } else if (st.isFile()) {
        files.push(relName);
      } else {
        throw new Error(`${join(abs, name)}: not a regular file or folder (symlinks are not allowed in a version)`);
      }
    }
  }
  await walk(dir, '');
  return { files, dirs };
}

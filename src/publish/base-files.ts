import { readdirSync, statSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MANIFEST, MODEL_CARD } from './layout.js';

/**
 * Weight files are never copied from the base: the merge runner writes the merged weights, and a
 * stale base weight file next to them would be loaded by some servers instead.
 */
const WEIGHT_FILE =
  /(\.safetensors|\.safetensors\.index\.json|\.bin|\.bin\.index\.json|\.pt|\.pth|\.ckpt|\.h5|\.msgpack|\.onnx|\.onnx_data|\.gguf|\.ot|\.pdparams|\.npz|\.tflite)$/i;

/** Files we write ourselves: the base's model card describes the base, not the merge. */
const OWN_FILES = new Set([MANIFEST, MODEL_CARD]);

function isWeightFile(name: string): boolean {
  return WEIGHT_FILE.test(name);
}

/** A file a publication copies from the base folder. */
export interface BaseFile {
  /** its path in the version folder, `/`-separated */
  rel: string;
  /** its path in the base folder */
  path: string;
  /** its size (of the link's target for a symlink) */
  bytes: number;
}

/**
 * The files a publication copies from a base folder, with their sizes, sorted by relative path:
 * config, tokenizer and other non-weight files (config.json, tokenizer*.json, tokenizer.model,
 * vocab/merges, chat_template*, preprocessor_config.json, LICENSE, ...), subfolders included. Dot
 * entries (.git, .cache) are skipped, and so is the base's own model card and manifest. Symlinks
 * are followed (the Hugging Face cache stores files as links into blobs/); a dangling one is
 * skipped. The room check (docs/operations.md) sizes a version with the same list.
 */
export function baseFilesToCopy(baseFolder: string): BaseFile[] {
  const files: BaseFile[] = [];
  list(baseFolder, '', files);
  return files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

function list(dir: string, rel: string, files: BaseFile[]): void {
  for (const name of readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    if (!rel && OWN_FILES.has(name)) continue;
    const path = join(dir, name);
    const relName = rel ? `${rel}/${name}` : name;
    let st;
    try {
      st = statSync(path);
    } catch {
      continue; // a dangling link in the base folder is not ours to fix
    }
    if (st.isDirectory()) list(path, relName, files);
    else if (st.isFile() && !isWeightFile(name)) files.push({ rel: relName, path, bytes: st.size });
  }
}

/**
 * Copy the files of baseFilesToCopy into `dest`, keeping subfolders. A file already in `dest` is
 * left alone: what the merge runner wrote wins. Returns the relative paths copied, sorted.
 */
export async function copyBaseFiles(baseFolder: string, dest: string): Promise<string[]> {
  const copied: string[] = [];
  for (const f of baseFilesToCopy(baseFolder)) {
    const to = join(dest, f.rel);
    await mkdir(dirname(to), { recursive: true });
    try {
      await copyFile(f.path, to, 1 /* COPYFILE_EXCL */);
      copied.push(f.rel);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return copied;
}

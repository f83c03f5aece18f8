import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST, MODEL_CARD } from './layout.js';

/**
 * Weight files are never copied from the base: the merge runner writes the merged weights, and a
 * stale base weight file next to them would be loaded by some servers instead.
 */
const WEIGHT_FILE =
  /(\.safetensors|\.safetensors\.index\.json|\.bin|\.bin\.index\.json|\.pt|\.pth|\.ckpt|\.h5|\.msgpack|\.onnx|\.onnx_data|\.gguf|\.ot|\.pdparams|\.npz|\.tflite)$/i;

/** Files we write ourselves: the base's model card describes the base, not the merge. */
const OWN_FILES = new Set([MANIFEST, MODEL_CARD]);

export function isWeightFile(name: string): boolean {
  return WEIGHT_FILE.test(name);
}

/**
 * Copy the base folder's config, tokenizer and other non-weight files (config.json,
 * tokenizer*.json, tokenizer.model, vocab/merges, chat_template*, preprocessor_config.json,
 * LICENSE, ...) into `dest`, keeping subfolders. Dot entries (.git, .cache) are skipped. Symlinks
 * are followed (the Hugging Face cache stores files as links into blobs/). A file already in
 * `dest` is left alone: what the merge runner wrote wins. Returns the relative paths copied.
 */
export async function copyBaseFiles(baseFolder: string, dest: string): Promise<string[]> {
  const copied: string[] = [];
  await walk(baseFolder, dest, '', copied, true);
  return copied.sort();
}

async function walk(src: string, dest: string, rel: string, copied: string[], top: boolean): Promise<void> {
  for (const name of (await readdir(src)).sort()) {
    if (name.startsWith('.')) continue;
    if (top && OWN_FILES.has(name)) continue;
    const from = join(src, name);
    const to = join(dest, name);
    const relName = rel ? `${rel}/${name}` : name;
    let st;
    try {
      st = await stat(from);
    } catch {
      continue; // a dangling link in the base folder is not ours to fix
    }
    if (st.isDirectory()) {
      await mkdir(to, { recursive: true });
      await walk(from, to, relName, copied, false);
    } else if (st.isFile() && !isWeightFile(name)) {
      try {
        await copyFile(from, to, 1 /* COPYFILE_EXCL */);
        copied.push(relName);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }
}

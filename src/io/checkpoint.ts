/**
 * What a checkpoint path consists of: a .safetensors file, a folder with model.safetensors, a
 * folder with a HF shard index (model.safetensors.index.json) and the shards it names, or a PEFT
 * LoRA adapter folder (adapter_config.json and adapter_model.safetensors, docs/lora.md).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from './types.js';
import { compareNames } from './safetensors/order.js';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, ADAPTER_WEIGHTS_BIN } from './lora/config.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface ShardIndex {
  /** path of the index file */
  path: string;
  dir: string;
  /** metadata.total_size when present (not checked: writers disagree on what it counts) */
  totalSize: number | null;
  /** tensor name → shard file name (relative to dir) */
  weightMap: ReadonlyMap<string, string>;
  /** distinct shard file names, sorted */
  shards: string[];
}

export type CheckpointLayout = { kind: 'file'; file: string } | { kind: 'sharded'; index: ShardIndex };

/** Parses and checks a shard index; InputError (naming the index) when it is malformed. */
export function readIndex(path: string): ShardIndex {
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e;
    throw new InputError(path, `shard index is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(obj)) throw new InputError(path, 'shard index is not a JSON object');
  const wm = obj.weight_map;
  if (!isObject(wm)) throw new InputError(path, 'shard index has no "weight_map" object');
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string')
      throw new InputError(path, `weight_map entry ${JSON.stringify(tensor)} is not a file name`);
    // shard names are plain file names next to the index: nothing may point elsewhere
    if (shard.includes('/') || shard.includes('\\') || !shard.endsWith('.safetensors') || shard.startsWith('.')) {
      throw new InputError(
        path,
        `weight_map names an invalid shard file ${JSON.stringify(shard)} for ${JSON.stringify(tensor)}`,
      );
    }
    weightMap.set(tensor, shard);
  }
  if (weightMap.size === 0) throw new InputError(path, 'shard index maps no tensors');
  let totalSize: number | null = null;
  if (obj.metadata !== undefined) {
    if (!isObject(obj.metadata)) throw new InputError(path, 'shard index "metadata" is not an object');
    const t = obj.metadata.total_size;
    if (t !== undefined) {
      if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0)
        throw new InputError(path, 'shard index metadata.total_size is not a non-negative integer');
      totalSize = t;
    }
  }
  const shards = [...new Set(weightMap.values())].sort(compareNames);
  return { path, dir: dirname(path), totalSize, weightMap, shards };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The layout of a checkpoint path, or null when it is not a recognizable checkpoint.
 * A folder holding both a single file and an index is ambiguous: InputError.
 */
export function resolveCheckpoint(path: string): CheckpointLayout | null {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  if (st.isFile()) {
    if (path.endsWith('.safetensors')) return { kind: 'file', file: path };
    if (basename(path).endsWith('.safetensors.index.json')) return { kind: 'sharded', index: readIndex(path) };
    return null;
  }
  if (!st.isDirectory()) return null;
  const single = join(path, SINGLE_FILE);
  const index = join(path, INDEX_FILE);
  const hasSingle = existsSync(single);
  const hasIndex = existsSync(index);
  if (hasSingle && hasIndex) throw new InputError(path, `ambiguous checkpoint: both ${SINGLE_FILE} and ${INDEX_FILE}`);
  if (hasSingle) return { kind: 'file', file: single };
  if (hasIndex) return { kind: 'sharded', index: readIndex(index) };
  return null;
}

/** PyTorch's pickle files (torch.save, Lightning): never loaded, since unpickling can run arbitrary code. */
const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth', '.ckpt'];
const PICKLE_REFUSAL = 'pickle files are not loaded, for safety (unpickling can run arbitrary code)';
const EXPECTED = `${SINGLE_FILE}, ${INDEX_FILE} and its shards, or a PEFT adapter folder (${ADAPTER_CONFIG} + ${ADAPTER_WEIGHTS})`;

export function isPickleFile(name: string): boolean {
  const lower = name.toLowerCase();
  return PICKLE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** The one-line conversion of a pickled state dict `name` to `out` (default: `<stem>.safetensors`). */
function convertCommand(name: string, out = name.replace(/\.[^.]+$/, '') + '.safetensors'): string {
  return `python -c "import torch; from safetensors.torch import save_file; save_file(torch.load('${name}', weights_only=True), '${out}')"`;
}

/** At most five names, then how many more. */
function someNames(names: readonly string[]): string {
  return names.slice(0, 5).join(', ') + (names.length > 5 ? ` and ${names.length - 5} more` : '');
}

/**
 * Why `path` is not a checkpoint (resolveCheckpoint found none there), in words the person who
 * dropped it can act on: a pickle file is named with how to convert it; a folder says what it
 * expected and what it holds.
 */
export function notCheckpointReason(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'not a checkpoint: no such file or folder';
    throw e;
  }
  const name = basename(path);
  if (st.isDirectory()) return folderReason(path);
  if (isPickleFile(name))
    return `${name} is a PyTorch pickle file: ${PICKLE_REFUSAL}. Convert it to safetensors: ${convertCommand(name)}, or save_pretrained(..., safe_serialization=True) in transformers`;
  return `not a checkpoint: expected a .safetensors file, or a folder with ${EXPECTED}`;
}

function folderReason(dir: string): string {
  const names = readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort(compareNames);
  const pickles = names.filter(isPickleFile);
  const folder = `folder ${basename(dir)}`;
  if (pickles.length === 0)
    return `not a checkpoint: ${folder} holds no weights (found ${names.length ? someNames(names) : 'nothing'}); expected ${EXPECTED}`;
  return (
    `not a checkpoint: ${folder} holds PyTorch pickle weights (${someNames(pickles)}), and ${PICKLE_REFUSAL}; expected ${EXPECTED}. ` +
    `Convert with save_pretrained(..., safe_serialization=True) in transformers, or: ${convertCommand(pickles[0]!, SINGLE_FILE)}`
  );
}

/**
 * The weight files a checkpoint consists of (for hashing and completeness checks), or null when
 * the path is not a recognizable checkpoint. For a sharded checkpoint: the index, then every shard
 * it names, whether or not that shard exists yet (an intake waiting for completeness needs them).
 * For an adapter folder: adapter_config.json, then adapter_model.safetensors, whether or not it
 * exists yet (adapter_model.bin instead when only that is there: it is refused, with its reason, when
 * opened). Other files of a folder (config, tokenizer, README) are not included. A malformed index
 * (possibly still being written), or a folder that is both a model and an adapter, is an InputError.
 */
export function findCheckpointFiles(path: string): string[] | null {
  const adapter = adapterCheckpointFiles(path);
  if (adapter) return adapter;
  const layout = resolveCheckpoint(path);
  if (!layout) return null;
  if (layout.kind === 'file') return [layout.file];
  return [layout.index.path, ...layout.index.shards.map((s) => join(layout.index.dir, s))];
}

/** The files of an adapter folder (see findCheckpointFiles), null when `path` is not one. */
function adapterCheckpointFiles(path: string): string[] | null {
  const config = join(path, ADAPTER_CONFIG);
  if (!existsSync(config)) return null;
  for (const model of [SINGLE_FILE, INDEX_FILE]) {
    if (existsSync(join(path, model)))
      throw new InputError(path, `ambiguous checkpoint: both ${ADAPTER_CONFIG} and ${model}`);
  }
  const weights = join(path, ADAPTER_WEIGHTS);
  const bin = join(path, ADAPTER_WEIGHTS_BIN);
  return [config, !existsSync(weights) && existsSync(bin) ? bin : weights];
}

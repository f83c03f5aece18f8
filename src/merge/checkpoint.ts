/**
 * A checkpoint as the merge runner reads it: a full model (θ_t stored; τ = θ_t − θ0 formed while
 * streaming), or a PEFT LoRA adapter folder (τ formed per tensor from the factors, docs/lora.md).
 * Either way one tensor at a time: `prepare(name)` is awaited before the method reads tensor `name`,
 * and holds at most that tensor's τ.
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Engine } from '../engine/types.js';
import { isAdapterFolder, openAdapter, type LoraAdapter } from '../io/lora/adapter.js';
import { findCheckpointFiles, openModel } from '../io/model.js';
import { sha256File } from '../util/hash.js';
import type { ModelReader } from '../io/types.js';
import { adapterTau } from './adapter-tau.js';
import type { AdapterLineage } from './types.js';
import { floatDtypes, validateAgainstBase } from './validate.js';

/**
 * One tensor of the checkpoint, ready for the method: `stored` is read (and checked finite) from
 * the full checkpoint by the update pass; `tau` is the task vector already formed (an adapter's;
 * null: τ = 0, a tensor the adapter does not change), checked finite.
 */
export type CheckpointTensor = { kind: 'stored'; model: ModelReader } | { kind: 'tau'; tau: Float32Array | null };

export interface MergeCheckpoint {
  /** the path as given (a file or folder; the adapter folder) */
  readonly path: string;
  /** bytes of stored tensor data (an adapter's: its factors and saved modules) */
  readonly dataBytes: number;
  /** what the adapter was, for lineage; null for a full checkpoint */
  readonly adapter: AdapterLineage | null;
  /** the float dtypes its tensors are stored in (an adapter's: its weights'), for lineage; see floatDtypes */
  readonly dtype: string;
  /** things worth a warning that do not stop the merge */
  readonly warnings: readonly string[];
  prepare(name: string): Promise<CheckpointTensor>;
  close(): void;
}

/** A full checkpoint, its tensor set checked against the base (names, shapes, dtypes). */
function fullCheckpoint(path: string, base: ModelReader): MergeCheckpoint {
  const model = openModel(path);
  try {
    validateAgainstBase(base, model);
  } catch (e) {
    model.close();
    throw e;
  }
  return storedCheckpoint(model);
}

/** A full checkpoint already opened (and checked): every tensor is read from it as stored. */
export function storedCheckpoint(model: ModelReader): MergeCheckpoint {
  const stored: CheckpointTensor = { kind: 'stored', model };
  return {
    path: model.path,
    dataBytes: model.dataBytes,
    adapter: null,
    dtype: floatDtypes(model),
    warnings: [],
    prepare: () => Promise.resolve(stored),
    close: () => model.close(),
  };
}

/** An adapter folder, opened and checked against the base by openAdapter (src/io/lora). */
async function adapterCheckpoint(
  path: string,
  base: ModelReader,
  baseDir: string,
  engine: Engine,
): Promise<MergeCheckpoint> {
  const adapter = openAdapter(path, base, baseDir);
  try {
    const lineage = await adapterLineage(adapter);
    return {
      path: adapter.path,
      dataBytes: adapter.weights.dataBytes,
      adapter: lineage,
      dtype: floatDtypes(adapter.weights),
      warnings: adapter.warnings,
      prepare: async (name) => ({ kind: 'tau', tau: await adapterTau(adapter, base, engine, name) }),
      close: () => adapter.close(),
    };
  } catch (e) {
    adapter.close();
    throw e;
  }
}

/** Opens a checkpoint path of a merge against the base; InputError with a one-line reason when refused. */
export function openCheckpoint(
  path: string,
  base: ModelReader,
  basePath: string,
  engine: Engine,
): Promise<MergeCheckpoint> {
  if (isAdapterFolder(path)) {
    findCheckpointFiles(path); // refuses a folder that is both a model and an adapter
    return adapterCheckpoint(path, base, baseFolder(basePath), engine);
  }
  return Promise.resolve(fullCheckpoint(path, base));
}

/** The folder holding the base's config.json: the base folder, or the folder of a base file. */
function baseFolder(basePath: string): string {
  return statSync(basePath).isDirectory() ? basePath : dirname(basePath);
}

async function adapterLineage(adapter: LoraAdapter): Promise<AdapterLineage> {
  const [configFile, weightsFile] = adapter.files;
  const c = adapter.config;
  return {
    r: c.r,
    alpha: c.alpha,
    rslora: c.rslora,
    targets: [...adapter.targets.keys()].sort(),
    modules_to_save: [...c.modulesToSave],
    config_sha256: await sha256File(configFile),
    weights_sha256: await sha256File(weightsFile),
  };
}

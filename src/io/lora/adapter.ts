/**
 * A PEFT LoRA adapter folder read as a checkpoint of a given base: which base tensors it changes
 * and how (low-rank factors, or a full replacement), checked against the base's shapes. Nothing
 * here multiplies: the merge layer forms ΔW = scaling · B A with the engine (docs/lora.md).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openModel } from '../model.js';
import { InputError, type ModelReader, type TensorInfo } from '../types.js';
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  ADAPTER_WEIGHTS_BIN,
  moduleScaling,
  readLoraConfig,
  type LoraConfig,
} from './config.js';
import { checkBaseModel } from './base-model.js';

/** PEFT saves every adapter tensor under the wrapped model's prefix. */
const PREFIX = 'base_model.model.';

/** How ΔW's factors lie: Linear (out×in = B A), Conv1D with fan_in_fan_out and Embedding ((B A)ᵀ). */
export type LoraLayout = 'linear' | 'transposed' | 'embedding';

/** One low-rank update of a base tensor: ΔW = scaling · B A, or its transpose (layout). */
export interface LoraFactors {
  /** module name as PEFT matches patterns against it (e.g. model.layers.0.self_attn.q_proj) */
  module: string;
  /** adapter tensor names */
  a: string;
  b: string;
  rank: number;
  alpha: number;
  scaling: number;
  layout: LoraLayout;
}

/** What the adapter does to one base tensor. */
export interface AdapterTarget {
  /** low-rank update, if any */
  lora?: LoraFactors;
  /** adapter tensor that replaces the base tensor (modules_to_save, saved embedding layers) */
  replacement?: string;
}

export interface LoraAdapter {
  readonly path: string;
  /** adapter_config.json, then adapter_model.safetensors */
  readonly files: readonly string[];
  readonly config: LoraConfig;
  /** base tensor name → what changes it; base tensors not listed have τ = 0 */
  readonly targets: ReadonlyMap<string, AdapterTarget>;
  /** the adapter's tensors (small: factors and replaced modules) */
  readonly weights: ModelReader;
  /** things worth a log line that do not stop the merge (an unverifiable base_model_name_or_path) */
  readonly warnings: readonly string[];
  close(): void;
}

/** True when `dir` holds adapter_config.json: the folder is a PEFT adapter, not a model. */
export function isAdapterFolder(dir: string): boolean {
  return existsSync(join(dir, ADAPTER_CONFIG));
}

/** The files an adapter consists of, for hashing and write-completion checks. */
export function adapterFiles(dir: string): string[] {
  return [join(dir, ADAPTER_CONFIG), join(dir, ADAPTER_WEIGHTS)];
}

/**
 * Opens an adapter against the base it will be merged into. InputError with a one-line reason
 * for a refusal (unsupported kind, .bin weights, targets that match no base tensor, shapes).
 */
export function openAdapter(dir: string, base: ModelReader, baseDir: string | null): LoraAdapter {
  const config = readLoraConfig(dir);
  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(weightsPath)) {
    if (existsSync(join(dir, ADAPTER_WEIGHTS_BIN)))
      throw new InputError(dir, `${ADAPTER_WEIGHTS_BIN} (pickle) is refused: save the adapter with safe_serialization`);
    throw new InputError(dir, `adapter folder without ${ADAPTER_WEIGHTS}`);
  }
  const warnings = checkBaseModel(dir, config.baseModel, baseDir);
  const weights = openModel(weightsPath);
  try {
    const targets = mapTargets(weightsPath, config, weights.tensors, base.tensors);
    return {
      path: dir,
      files: [join(dir, ADAPTER_CONFIG), weightsPath],
      config,
      targets,
      weights,
      warnings,
      close: () => weights.close(),
    };
  } catch (e) {
    weights.close();
    throw e;
  }
}

type Tensors = ReadonlyMap<string, TensorInfo>;

/** Sorts the adapter's tensors into per-base-tensor targets, refusing what PEFT would not load. */
function mapTargets(file: string, config: LoraConfig, adapter: Tensors, base: Tensors): Map<string, AdapterTarget> {
  const targets = new Map<string, AdapterTarget>();
  const target = (name: string): AdapterTarget => {
    let t = targets.get(name);
    if (!t) targets.set(name, (t = {}));
    return t;
  };
  for (const name of adapter.keys()) {
    if (!name.startsWith(PREFIX)) throw new InputError(file, `tensor ${JSON.stringify(name)} lacks PEFT's prefix`);
    const key = name.slice(PREFIX.length);
    const factor = /^(.+)\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B)$/.exec(key);
    if (factor) {
      // both factors are read when lora_A is met; factorsOf refuses an A without its B
      if (factor[2].includes('_A'))
        target(baseTensorOf(file, factor[1], base)).lora = factorsOf(file, config, factor[1], adapter, base);
      else if (!adapter.has(name.replace(/_B(\.weight)?$/, '_A$1')))
        throw new InputError(file, `module ${JSON.stringify(factor[1])} has lora_B but no lora_A`);
      continue;
    }
    refuseKnownExtras(file, key);
    const saved = /^(.+)\.base_layer\.weight$/.exec(key);
    const replaced = saved ? `${saved[1]}.weight` : key;
    if (!base.has(replaced))
      throw new InputError(file, `adapter tensor ${JSON.stringify(name)} matches no tensor of the base`);
    checkSameShape(file, name, adapter.get(name)!, base.get(replaced)!);
    target(replaced).replacement = name;
  }
  if (![...targets.values()].some((t) => t.lora))
    throw new InputError(file, 'the adapter has no LoRA factors (lora_A/lora_B)');
  return targets;
}

function refuseKnownExtras(file: string, key: string): void {
  if (/\.lora_magnitude_vector(\.weight)?$/.test(key))
    throw new InputError(file, 'DoRA adapters (lora_magnitude_vector) are not supported');
  if (/\.lora_B\.bias$/.test(key)) throw new InputError(file, 'lora_bias adapters are not supported');
  if (/\.lora_[A-Za-z_]+$/.test(key) || /\.lora_[A-Z]\./.test(key))
    throw new InputError(file, `unsupported LoRA tensor ${JSON.stringify(key)}`);
}

function baseTensorOf(file: string, module: string, base: Tensors): string {
  const name = `${module}.weight`;
  if (!base.has(name))
    throw new InputError(file, `target module ${JSON.stringify(module)} matches no tensor of the base (${name})`);
  return name;
}

function factorsOf(file: string, config: LoraConfig, module: string, adapter: Tensors, base: Tensors): LoraFactors {
  const embedding = adapter.has(`${PREFIX}${module}.lora_embedding_A`);
  const a = embedding ? `${PREFIX}${module}.lora_embedding_A` : `${PREFIX}${module}.lora_A.weight`;
  const b = embedding ? `${PREFIX}${module}.lora_embedding_B` : `${PREFIX}${module}.lora_B.weight`;
  const aInfo = adapter.get(a);
  const bInfo = adapter.get(b);
  if (!aInfo || !bInfo)
    throw new InputError(file, `module ${JSON.stringify(module)} has lora_A or lora_B but not both`);
  const { rank, alpha, scaling } = moduleScaling(config, module);
  const layout: LoraLayout = embedding ? 'embedding' : config.fanInFanOut ? 'transposed' : 'linear';
  checkFactorShapes(file, module, aInfo, bInfo, base.get(`${module}.weight`)!, rank, layout);
  return { module, a, b, rank, alpha, scaling, layout };
}

/** A is r×in and B out×r (Embedding: A r×rows, B cols×r); ΔW, or (B A)ᵀ, has the base's shape. */
function checkFactorShapes(
  file: string,
  module: string,
  a: TensorInfo,
  b: TensorInfo,
  base: TensorInfo,
  rank: number,
  layout: LoraLayout,
): void {
  const fail = (why: string): never => {
    throw new InputError(file, `module ${JSON.stringify(module)}: ${why}`);
  };
  if (a.shape.length !== 2 || b.shape.length !== 2)
    fail(`lora_A ${fmt(a.shape)} and lora_B ${fmt(b.shape)} must be matrices (conv LoRA is not supported)`);
  if (a.shape[0] !== rank || b.shape[1] !== rank)
    fail(`factor shapes lora_A ${fmt(a.shape)}, lora_B ${fmt(b.shape)} do not have the configured rank ${rank}`);
  const product = layout === 'linear' ? [b.shape[0], a.shape[1]] : [a.shape[1], b.shape[0]];
  if (base.shape.length !== 2 || base.shape[0] !== product[0] || base.shape[1] !== product[1])
    fail(`shape mismatch: the update is ${fmt(product)}, the base tensor ${base.name} is ${fmt(base.shape)}`);
}

function checkSameShape(file: string, name: string, t: TensorInfo, base: TensorInfo): void {
  if (t.shape.length !== base.shape.length || t.shape.some((d, i) => d !== base.shape[i]))
    throw new InputError(
      file,
      `shape mismatch: ${name} is ${fmt(t.shape)}, the base's ${base.name} ${fmt(base.shape)}`,
    );
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

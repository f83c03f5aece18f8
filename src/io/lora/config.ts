/**
 * adapter_config.json of a PEFT LoRA adapter: what cmerge reads from it, and the adapter kinds it
 * refuses because their update is not θ0 + scaling · B A (docs/lora.md).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError } from '../types.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
export const ADAPTER_WEIGHTS_BIN = 'adapter_model.bin';

const patternMap = z.record(z.string(), z.number().positive()).nullish();

/** PEFT writes many more keys (task_type, inference_mode, ...); only these change ΔW. */
const loraConfigSchema = z.looseObject({
  peft_type: z.string(),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  use_rslora: z.boolean().nullish(),
  fan_in_fan_out: z.boolean().nullish(),
  rank_pattern: patternMap,
  alpha_pattern: patternMap,
  modules_to_save: z.array(z.string()).nullish(),
  target_modules: z.union([z.array(z.string()), z.string()]).nullish(),
  base_model_name_or_path: z.string().nullish(),
  use_dora: z.boolean().nullish(),
  lora_bias: z.boolean().nullish(),
  layer_replication: z.unknown().nullish(),
  trainable_token_indices: z.unknown().nullish(),
  target_parameters: z.array(z.string()).nullish(),
});

export interface LoraConfig {
  r: number;
  alpha: number;
  rslora: boolean;
  fanInFanOut: boolean;
  /** module-name pattern → rank / alpha, in PEFT's order (first match wins) */
  rankPattern: ReadonlyArray<[string, number]>;
  alphaPattern: ReadonlyArray<[string, number]>;
  modulesToSave: readonly string[];
  /** as written (a list, or PEFT's regex string) */
  targetModules: readonly string[] | string | null;
  baseModel: string | null;
}

/** Reads and checks adapter_config.json; InputError with a one-line reason for what cmerge refuses. */
export function readLoraConfig(dir: string): LoraConfig {
  const path = join(dir, ADAPTER_CONFIG);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code) throw e;
    throw new InputError(path, `not valid JSON (${(e as Error).message})`);
  }
  const peftType = (raw as { peft_type?: unknown } | null)?.peft_type;
  if (typeof peftType === 'string' && peftType !== 'LORA')
    throw new InputError(path, `peft_type ${peftType} is not supported: cmerge merges LoRA adapters only`);
  const parsed = loraConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(path, `${issue.path.join('.') || 'config'}: ${issue.message}`);
  }
  const c = parsed.data;
  refuseUnsupported(path, c);
  const rankPattern = Object.entries(c.rank_pattern ?? {});
  const alphaPattern = Object.entries(c.alpha_pattern ?? {});
  checkPatterns(path, 'rank_pattern', rankPattern);
  checkPatterns(path, 'alpha_pattern', alphaPattern);
  return {
    r: c.r,
    alpha: c.lora_alpha,
    rslora: c.use_rslora === true,
    fanInFanOut: c.fan_in_fan_out === true,
    rankPattern,
    alphaPattern,
    modulesToSave: c.modules_to_save ?? [],
    targetModules: c.target_modules ?? null,
    baseModel: c.base_model_name_or_path ?? null,
  };
}

function refuseUnsupported(path: string, c: z.output<typeof loraConfigSchema>): void {
  if (c.peft_type !== 'LORA')
    throw new InputError(path, `peft_type ${c.peft_type} is not supported: cmerge merges LoRA adapters only`);
  if (c.use_dora) throw new InputError(path, 'DoRA adapters (use_dora) are not supported: the update is not B A');
  if (c.lora_bias) throw new InputError(path, 'lora_bias adapters are not supported: they also change the biases');
  if (c.layer_replication) throw new InputError(path, 'layer_replication is not supported');
  if (c.trainable_token_indices) throw new InputError(path, 'trainable_token_indices is not supported');
  if (c.target_parameters?.length) throw new InputError(path, 'target_parameters adapters are not supported');
}

function patternRegExp(key: string): RegExp {
  return new RegExp(`^(.*\\.)?(${key})$`);
}

function checkPatterns(path: string, field: string, patterns: ReadonlyArray<[string, number]>): void {
  for (const [key] of patterns) {
    try {
      patternRegExp(key);
    } catch {
      throw new InputError(path, `${field} key ${JSON.stringify(key)} is not a regular expression cmerge can read`);
    }
  }
}

/** PEFT's get_pattern_key: the first pattern p with `(.*\.)?(p)$` matching the whole module name. */
export function matchPattern(patterns: ReadonlyArray<[string, number]>, module: string): number | undefined {
  for (const [key, value] of patterns) {
    if (patternRegExp(key).test(module)) return value;
  }
  return undefined;
}

/** rank and scaling of one module (PEFT: alpha / r, or alpha / √r with rsLoRA). */
export function moduleScaling(c: LoraConfig, module: string): { rank: number; alpha: number; scaling: number } {
  const rank = matchPattern(c.rankPattern, module) ?? c.r;
  const alpha = matchPattern(c.alphaPattern, module) ?? c.alpha;
  return { rank, alpha, scaling: c.rslora ? alpha / Math.sqrt(rank) : alpha / rank };
}

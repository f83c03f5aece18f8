import { relative, sep } from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS } from '../../io/lora/config.js';
import { openAdapter } from '../../io/lora/adapter.js';
import { findCheckpointFiles } from '../../io/model.js';
import type { ModelReader } from '../../io/types.js';
import type { AdapterRecord } from '../../store/index.js';
import type { CheckpointHashes } from '../checkpoint-hash.js';

/**
 * Validation of a PEFT LoRA adapter folder (docs/lora.md): opened against the pipeline's base the
 * way the merge will open it, so every refusal (DoRA, .bin weights, targets that match nothing,
 * shapes, another base) is found at intake. What it is goes to the store as an AdapterRecord.
 */

/** What the adapter is, less its files' hashes (added once they are known), and what to log. */
export interface AdapterSummary {
  record: Omit<AdapterRecord, 'config_sha256' | 'weights_sha256'>;
  /** openAdapter's warnings (a base it could not compare): logged, not a refusal */
  warnings: readonly string[];
}

/** Opens the adapter at `dir` against `base` (its folder `baseDir`, null when a single file); InputError when refused. */
export function checkAdapter(dir: string, base: ModelReader, baseDir: string | null): AdapterSummary {
  findCheckpointFiles(dir); // a folder that is a model too is refused as ambiguous
  const adapter = openAdapter(dir, base, baseDir);
  try {
    const c = adapter.config;
    return {
      record: {
        r: c.r,
        alpha: c.alpha,
        use_rslora: c.rslora,
        target_tensors: adapter.targets.size,
        target_modules: typeof c.targetModules === 'string' ? c.targetModules : (c.targetModules?.slice() ?? null),
        modules_to_save: c.modulesToSave.slice(),
      },
      warnings: adapter.warnings,
    };
  } finally {
    adapter.close();
  }
}

/** The summary completed with the sha256 of adapter_config.json and adapter_model.safetensors. */
export function adapterRecord(summary: AdapterSummary, hashes: CheckpointHashes): AdapterRecord {
  const config = hashes.files[ADAPTER_CONFIG];
  const weights = hashes.files[ADAPTER_WEIGHTS];
  if (!config || !weights) throw new Error(`adapter files not hashed: ${Object.keys(hashes.files).join(', ')}`);
  return { ...summary.record, config_sha256: config, weights_sha256: weights };
}

/** A refusal's reason, naming the file inside the folder when it is one of its files. */
export function adapterReason(dir: string, file: string, reason: string): string {
  const rel = relative(dir, file);
  return rel && !rel.startsWith('..') && !rel.includes(sep) ? `${rel}: ${reason}` : reason;
}

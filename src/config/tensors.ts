import { compilePatterns } from './globs.js';
import type { TensorRulesConfig } from './schema.js';

/**
 * The per-pipeline tensor rules, compiled. Design §2: a tensor is linear by default when it is a
 * float 2-D `.weight` that is not an embedding; users override that, and may exclude tensors
 * (task heads, say) from merging altogether: excluded tensors are copied from the base.
 */
export interface TensorRules {
  /** Whether the tensor takes part in merging (include matches and exclude does not). */
  merged(name: string): boolean;
  /**
   * Whether a merged tensor is treated as linear. `byDefault` is the design §2 rule's answer;
   * linear_exclude wins over linear_include. The caller must still require a float 2-D tensor.
   */
  linear(name: string, byDefault: boolean): boolean;
}

export function compileTensorRules(cfg: TensorRulesConfig): TensorRules {
  const include = compilePatterns(cfg.include);
  const exclude = compilePatterns(cfg.exclude);
  const linInclude = compilePatterns(cfg.linear_include);
  const linExclude = compilePatterns(cfg.linear_exclude);
  return {
    merged: (name) => include(name) && !exclude(name),
    linear: (name, byDefault) => {
      if (linExclude(name)) return false;
      if (linInclude(name)) return true;
      return byDefault;
    },
  };
}

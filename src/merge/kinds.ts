import picomatch from 'picomatch';
import { FLOAT_DTYPES, type TensorInfo } from '../io/types.js';
import type { TensorKind } from '../methods/types.js';

/**
 * Which tensors are merged and how (docs/methods.md#tensor-kinds). Patterns are globs over tensor
 * names; names have dots, not slashes, so `*` matches across dots (`*.fc1.weight`).
 */
export interface TensorRules {
  /** when given, only matching float tensors are merged; the rest are copied from the base */
  include?: string[];
  /** matching tensors are not merged (copied from the base), e.g. task heads */
  exclude?: string[];
  /** force these 2-D float tensors to count as linear */
  linearInclude?: string[];
  /** force these tensors to count as other (element-wise) parameters */
  linearExclude?: string[];
}

export type Disposition = TensorKind | 'copy';

function matcher(patterns: string[] | undefined): ((name: string) => boolean) | null {
  if (!patterns || patterns.length === 0) return null;
  const m = picomatch(patterns, { dot: true });
  return (name) => m(name);
}

/** The default rule matches nn.Linear in the reference: float, 2-D, `.weight`, not an embedding. */
export function defaultKind(info: TensorInfo): TensorKind {
  return info.shape.length === 2 && info.name.endsWith('.weight') && !info.name.includes('embed') ? 'linear' : 'other';
}

export function classifier(rules: TensorRules = {}): (info: TensorInfo) => Disposition {
  const inc = matcher(rules.include);
  const exc = matcher(rules.exclude);
  const linInc = matcher(rules.linearInclude);
  const linExc = matcher(rules.linearExclude);
  return (info) => {
    if (!FLOAT_DTYPES.has(info.dtype)) return 'copy';
    if (inc && !inc(info.name)) return 'copy';
    if (exc && exc(info.name)) return 'copy';
    if (linExc && linExc(info.name)) return 'other';
    if (linInc && linInc(info.name) && info.shape.length === 2) return 'linear';
    return defaultKind(info);
  };
}

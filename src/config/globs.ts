import picomatch from 'picomatch';

/**
 * Tensor-name patterns (picomatch, the project's choice for include/exclude): `*` matches any run
 * of characters including dots (tensor names have no `/`), `?` one character, `{q,k,v}_proj`
 * alternatives, `[0-9]` classes. `dot: true` so a `*` may start at a name's first character
 * whatever it is. Whole-name match.
 */
export type NameMatcher = (name: string) => boolean;

export function compilePatterns(patterns: readonly string[]): NameMatcher {
  if (patterns.length === 0) return () => false;
  return picomatch(patterns as string[], { dot: true });
}

/**
 * Tensor-name patterns, fnmatch style (as Python tooling uses for state-dict keys): `*` matches
 * any run of characters including dots, `?` one character, `[abc]` / `[!abc]` a class. Whole-name
 * match. Written here rather than using path globs because tensor names are not paths: `*` must
 * cross the dots in `encoder.layers.3.mlp.fc1.weight`.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') {
      while (pattern[i + 1] === '*') i++;
      re += '.*';
    } else if (c === '?') {
      re += '.';
    } else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw new Error(`unclosed "[" in pattern ${JSON.stringify(pattern)}`);
      let body = pattern.slice(i + 1, end);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else {
      re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
    }
  }
  return new RegExp(re + '$');
}

/** True when any pattern matches the whole name. */
export function matchAny(patterns: readonly RegExp[], name: string): boolean {
  return patterns.some((p) => p.test(name));
}

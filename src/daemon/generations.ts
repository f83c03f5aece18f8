import { generationDir, listGenerations, readStateMeta } from '../merge/state.js';

/**
 * Which merge-state generations the daemon keeps (docs/operations.md): the committed one, and
 * along its lineage one every `keepEvery` steps, so that a rollback or revert replays at most
 * keepEvery − 1 checkpoints on top of a kept state instead of the whole lineage (a state is
 * model-sized float32: keeping one per version does not scale).
 */
export function generationsToKeep(
  stateDir: string,
  committed: number,
  lineage: readonly string[],
  keepEvery: number,
): number[] {
  const keep = [committed];
  if (keepEvery <= 0) return keep;
  for (const id of listGenerations(stateDir)) {
    if (id === committed) continue;
    const held = lineageOf(stateDir, id);
    if (held && held.length % keepEvery === 0 && isPrefix(held, lineage)) keep.push(id);
  }
  return keep;
}

/** The kept generation holding the longest prefix of `lineage` (sha256 list), or null: replay from the base. */
export function nearestGeneration(stateDir: string, lineage: readonly string[]): { id: number; step: number } | null {
  let best: { id: number; step: number } | null = null;
  for (const id of listGenerations(stateDir)) {
    const held = lineageOf(stateDir, id);
    if (held && isPrefix(held, lineage) && (!best || held.length > best.step)) best = { id, step: held.length };
  }
  return best;
}

/** The sha256 of each checkpoint a generation holds, in merge order (null: unreadable or without hashes). */
function lineageOf(stateDir: string, id: number): string[] | null {
  try {
    const meta = readStateMeta(generationDir(stateDir, id));
    if (!meta || meta.checkpoints.some((c) => !c.sha256)) return null;
    return meta.checkpoints.map((c) => c.sha256!);
  } catch {
    return null;
  }
}

function isPrefix(held: readonly string[], lineage: readonly string[]): boolean {
  return held.length <= lineage.length && held.every((sha, i) => lineage[i] === sha);
}

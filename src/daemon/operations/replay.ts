import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { checkpointFiles, type Checkpoint, type Store, type Version } from '../../store/index.js';
import { generationDir } from '../../merge/state.js';
import { checkpointSha256 } from '../checkpoint-hash.js';
import { nearestGeneration } from '../generations.js';
import { mergeMetrics } from '../metrics.js';
import type { PipelineRunner } from '../pipeline.js';
import type { MergeOutcome } from '../runner-types.js';
import { OperationError, type ReplayOptions } from './types.js';

/** The checkpoints `ids` as the store records them, in that order. */
export function checkpointsOf(store: Store, ids: readonly number[]): Checkpoint[] {
  return ids.map((id) => {
    const c = store.checkpoint(id);
    if (!c) throw new Error(`checkpoint ${id} is missing from the store`);
    return c;
  });
}

/**
 * A replay must redo what was recorded: the configured method and params are the ones that made
 * `v` (a config changed since would silently give another model). Returns the engine that made
 * it, which the replay must run on (replayLineage's `engineOf`).
 */
export function recipeOf(runner: PipelineRunner, store: Store, v: Version): { engineOf: string | null } {
  const made = store.merge(v.merge_id);
  const engineOf = v.engine?.name ?? made?.engine ?? null;
  if (!made) return { engineOf };
  const cfg = runner.cfg;
  if (made.method !== cfg.method || stable(made.params) !== stable(cfg.params))
    throw new OperationError(
      'conflict',
      `version ${v.number} was made by ${made.method} ${stable(made.params)}; the config now says ${cfg.method} ${stable(cfg.params)}: a replay would not reproduce it`,
    );
  return { engineOf };
}

const stable = (o: unknown): string =>
  JSON.stringify(o, (_, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );

/** Each checkpoint's files are in place with their recorded sha256; otherwise refused, naming the others. */
export async function assertInPlace(checkpoints: readonly Checkpoint[]): Promise<void> {
  const bad: string[] = [];
  for (const c of checkpoints) {
    const files = checkpointFiles(c);
    if (!existsSync(files)) bad.push(`${c.name} (missing: ${files})`);
    else if ((await checkpointSha256(files)) !== c.sha256) bad.push(`${c.name} (sha256 changed: ${files})`);
  }
  if (bad.length)
    throw new OperationError('conflict', `cannot replay: checkpoint files not in place: ${bad.join(', ')}`);
}

/**
 * Merge `lineage` again into state generation `to` (and, with `out`, the model), from the kept
 * generation holding its longest proper prefix (docs/operations.md): at least the last checkpoint
 * is merged, so the output and the figures are those of a merge. On any failure the generation
 * and `out` are removed.
 */
export async function replayLineage(
  runner: PipelineRunner,
  lineage: readonly Checkpoint[],
  to: number,
  out: string | undefined,
  opts: ReplayOptions & { engineOf?: string | null },
): Promise<MergeOutcome> {
  const near = nearestGeneration(
    runner.stateDir,
    lineage.slice(0, -1).map((c) => c.sha256 ?? ''),
  );
  const todo = lineage.slice(near?.step ?? 0);
  await assertInPlace(todo);
  const startedAt = Date.now();
  try {
    const { report, peakRssBytes } = await runner.startWorker(todo, near?.id ?? 0, to, out).result;
    if (opts.engineOf && report.engine !== opts.engineOf && !opts.anyEngine)
      throw new OperationError(
        'conflict',
        `the replay ran on engine ${report.engine}, the version was made on ${opts.engineOf}: the results could differ in the last bits (allow it with any_engine)`,
      );
    const last = report.steps[report.steps.length - 1]!;
    return { report, peakRssBytes, metrics: mergeMetrics(report, last), mergeSeconds: (Date.now() - startedAt) / 1000 };
  } catch (e) {
    await rm(generationDir(runner.stateDir, to), { recursive: true, force: true });
    if (out) await rm(out, { recursive: true, force: true });
    throw e;
  }
}

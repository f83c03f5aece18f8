import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { commitGeneration, generationDir } from '../../merge/state.js';
import type { Store } from '../../store/index.js';
import { notifyServers } from '../aftercare.js';
import { pointCurrent } from '../current.js';
import type { DaemonEvents } from '../events.js';
import type { PipelineRunner } from '../pipeline.js';
import { checkpointsOf, recipeOf, replayLineage } from './replay.js';
import { OperationError, type Done, type ReplayOptions } from './types.js';

/**
 * `current` → version `number` (docs/operations.md). Its state generation, or one replayed from
 * the nearest kept one and checked against the recorded state sha256, becomes the state; the
 * checkpoints merged after it are marked rolled_back; the next merge continues from it. Order
 * for a crash: the state written, then SQLite, then `current` and CURRENT (recover() rolls
 * those forward from SQLite).
 */
export async function rollback(
  runner: PipelineRunner,
  store: Store,
  events: DaemonEvents | null,
  number: number,
  opts: ReplayOptions,
): Promise<Done> {
  const pipeline = runner.cfg.name;
  const v = store.version(pipeline, number);
  if (!v) throw new OperationError('not_found', `no version ${number} of "${pipeline}"`);
  if (v.removed_at || !existsSync(join(v.path, 'manifest.json')))
    throw new OperationError('conflict', `version ${number} was removed by retention (pin the versions to keep)`);
  const before = store.currentVersion(pipeline)?.number ?? null;
  const result = (detail: string) => ({
    pipeline,
    operation: 'rollback' as const,
    current_version: number,
    version: number,
    detail,
  });
  if (before === number) return { result: result(`version ${number} is already current`) };
  const stateDir = runner.stateDir;
  const made = store.merge(v.merge_id);
  let sha256 = made?.state_sha256 ?? null;
  if (!existsSync(join(generationDir(stateDir, number), 'state.json'))) {
    const recipe = recipeOf(runner, store, v);
    const outcome = await replayLineage(runner, checkpointsOf(store, v.lineage), number, undefined, {
      ...opts,
      ...recipe,
    });
    const replayed = outcome.report.steps[outcome.report.steps.length - 1]!.state_sha256;
    if (sha256 && replayed !== sha256)
      throw new OperationError(
        'conflict',
        `the replay did not reproduce version ${number}'s state (sha256 ${replayed} ≠ ${sha256})`,
      );
    sha256 = replayed;
  }
  const retired = store.rollbackTo(pipeline, number, {
    generation: number,
    path: generationDir(stateDir, number),
    sha256,
  });
  await pointCurrent(store, runner.cfg, number);
  // "rollback N" is one answer to a hand-moved `current` (docs/operations.md): merging continues from N
  if (store.pauseState(pipeline)?.kind === 'current_moved') store.setPaused(pipeline, null);
  commitGeneration(stateDir, number);
  await runner.pruneStates(number);
  const names = retired.map((c) => c.name);
  events?.emit({ type: 'rollback', pipeline, version: number, rolled_back: names });
  const after = notifyServers(runner.aftercare, number, v.path);
  return {
    result: result(
      `current is version ${number} (was ${before ?? 'none'}); rolled back: ${names.join(', ') || 'none'}`,
    ),
    after,
  };
}

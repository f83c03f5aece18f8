import { join, relative } from 'node:path';
import { commitGeneration } from '../../merge/state.js';
import {
  beginVersion,
  finishVersion,
  readManifest,
  sha256File,
  type PublishedVersion,
  type Staging,
} from '../../publish/index.js';
import type { Checkpoint, Store, Version } from '../../store/index.js';
import { cmergeVersion } from '../../util/version.js';
import { evaluateVersion, notifyServers, retainVersions } from '../aftercare.js';
import type { DaemonEvents } from '../events.js';
import { pointCurrent } from '../current.js';
import { mergeRecord } from '../metrics.js';
import type { PipelineRunner } from '../pipeline.js';
import { lineageOf, type MergeOutcome } from '../runner-types.js';
import { namedLike } from './queue-ops.js';
import { recipeOf, replayLineage } from './replay.js';
import { OperationError, type Done, type ReplayOptions } from './types.js';

/** A live checkpoint of the lineage by name (with or without `.safetensors`) or sha256 prefix (≥ 6 hex digits). */
export function findInLineage(store: Store, pipeline: string, ref: string): Checkpoint {
  const live = store.mergedCheckpoints(pipeline);
  let found = live.filter(namedLike(ref));
  if (!found.length && /^[0-9a-f]{6,64}$/i.test(ref))
    found = live.filter((c) => c.sha256?.startsWith(ref.toLowerCase()));
  if (found.length > 1)
    throw new OperationError(
      'invalid',
      `"${ref}" names ${found.length} checkpoints: ${found.map((c) => c.name).join(', ')}`,
    );
  if (found.length === 1) return found[0]!;
  const retired = store.retiredCheckpoints(pipeline).find((c) => c.name === ref || c.sha256?.startsWith(ref));
  throw new OperationError(
    retired ? 'conflict' : 'not_found',
    retired
      ? `${retired.name} is not in the lineage (${retired.retired})`
      : `no checkpoint "${ref}" in the lineage of "${pipeline}"`,
  );
}

/**
 * A new version (newest + 1, parent = current) whose lineage is the current one without the
 * checkpoint, rebuilt by merging the later checkpoints again in their order from the kept state
 * before them (docs/operations.md). Order for a crash: state and numbered folder written, then ONE
 * SQLite transaction, then `current` and CURRENT; before the commit, recover() removes both.
 */
export async function revert(
  runner: PipelineRunner,
  store: Store,
  events: DaemonEvents | null,
  ref: string,
  opts: ReplayOptions,
): Promise<Done> {
  const cfg = runner.cfg;
  const pipeline = cfg.name;
  const target = findInLineage(store, pipeline, ref);
  const current = store.currentVersion(pipeline);
  if (!current) throw new OperationError('conflict', `"${pipeline}" has no current version`);
  const lineage = store.mergedCheckpoints(pipeline).filter((c) => c.id !== target.id);
  if (!lineage.length)
    throw new OperationError('invalid', `reverting ${target.name} would leave an empty lineage: roll back instead`);
  const recipe = recipeOf(runner, store, current);
  const number = (store.latestVersion(pipeline)?.number ?? 0) + 1;
  const startedAt = Date.now();
  const staging = await beginVersion(cfg.repository, pipeline, number);
  const outcome = await replayLineage(runner, lineage, number, staging.dir, { ...opts, ...recipe });
  const published = await publishReplay(runner, staging, outcome, current, lineage);
  const v = store.commitRevert(
    pipeline,
    target.id,
    {
      ...mergeRecord(outcome, runner.stateDir, number, (Date.now() - startedAt) / 1000),
      method: cfg.method,
      params: cfg.params,
    },
    {
      number,
      parent: current.number,
      path: published.dir,
      files: published.manifest.files,
      manifest_sha256: await sha256File(join(published.dir, 'manifest.json')),
    },
  );
  await pointCurrent(store, cfg, number);
  commitGeneration(runner.stateDir, number);
  await runner.pruneStates(number);
  events?.emit({ type: 'revert', pipeline, version: number, checkpoint: target.name });
  events?.emit({ type: 'version_published', pipeline, version: number, parent: current.number, path: published.dir });
  const after = (async () => {
    await notifyServers(runner.aftercare, number, published.dir);
    await evaluateVersion(runner.aftercare, number, published.dir);
    await retainVersions(runner.aftercare);
  })();
  const detail = `version ${number}: ${lineage.length} checkpoints without ${target.name} (parent ${current.number})`;
  return { result: { pipeline, operation: 'revert', current_version: v.number, version: v.number, detail }, after };
}

/** The replay's staging folder completed as version `number` (parent: the current version, base as it recorded). */
async function publishReplay(
  runner: PipelineRunner,
  staging: Staging,
  outcome: MergeOutcome,
  current: Version,
  lineage: readonly Checkpoint[],
): Promise<PublishedVersion> {
  const cfg = runner.cfg;
  const { report } = outcome;
  return finishVersion(staging, {
    parent: current.number,
    method: cfg.method,
    params: cfg.params,
    base: (await readManifest(current.path)).base,
    baseModelId: cfg.base_model_id,
    checkpoints: lineage.map((c) => lineageOf(c, c.merged_at ?? '')),
    engine: report.engine,
    metrics: outcome.metrics.model,
    cmergeVersion: cmergeVersion(),
    knownSha256: Object.fromEntries(Object.entries(report.out_sha256).map(([p, h]) => [relative(staging.dir, p), h])),
  });
}

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'winston';
import type { PipelineConfig } from '../config/index.js';
import { applyRetention, runNotifiers, type SseHubs } from '../publish/index.js';
import type { Store } from '../store/index.js';
import { runEvaluator } from './evaluator.js';

/** What runs after a version becomes `current` (a merge, a rollback, a revert): each records its outcome, none throws. */
export interface AftercareDeps {
  cfg: PipelineConfig;
  store: Store;
  log: Logger;
  sse: SseHubs;
  signal?: AbortSignal;
}

/** Tell the model servers (the notifiers) that `version` is current; each attempt recorded in SQLite. */
export async function notifyServers(d: AftercareDeps, version: number, dir: string): Promise<void> {
  const { cfg, store, log } = d;
  if (cfg.notifiers.length === 0) return;
  const modelFile = existsSync(join(dir, 'model.safetensors'))
    ? join(dir, 'model.safetensors')
    : join(dir, 'model.safetensors.index.json');
  await runNotifiers(
    cfg.notifiers,
    { pipeline: cfg.name, version, path: dir, modelFile },
    {
      sse: d.sse,
      signal: d.signal,
      onOutcome: (outcome) => {
        store.recordNotification(cfg.name, version, {
          notifier: outcome.notifier,
          attempt: outcome.attempt,
          ok: outcome.ok,
          detail: outcome.detail,
          duration_ms: outcome.durationMs,
        });
        log.log(
          outcome.ok ? 'info' : 'warn',
          `notifier ${outcome.notifier} attempt ${outcome.attempt}: ${outcome.ok ? 'ok' : 'failed'} ${outcome.detail}`,
          { pipeline: cfg.name, version },
        );
      },
    },
  );
}

/** Record the evaluator's scores of `version` (`scores`: already measured by the quality gate). */
export async function evaluateVersion(
  d: AftercareDeps,
  version: number,
  dir: string,
  scores: Record<string, number> | null = null,
): Promise<void> {
  if (!d.cfg.evaluator) return;
  try {
    const measured = scores ?? (await runEvaluator(d.cfg.evaluator, dir));
    d.store.recordEvaluation(d.cfg.name, version, measured);
    d.log.info(`evaluated version ${version}`, { pipeline: d.cfg.name, scores: measured });
  } catch (e) {
    d.log.warn(`evaluation of version ${version} failed: ${(e as Error).message}`, { pipeline: d.cfg.name });
  }
}

/** Remove the versions past `retention.keep` (pinned and current ones stay). */
export async function retainVersions(d: AftercareDeps): Promise<void> {
  const { cfg, store, log } = d;
  try {
    const removed = await applyRetention(cfg.repository, cfg.name, {
      keep: cfg.retention.keep,
      pinned: store.pinnedVersions(cfg.name),
    });
    for (const version of removed) store.markRemoved(cfg.name, version);
    if (removed.length) log.info(`retention removed versions ${removed.join(', ')}`, { pipeline: cfg.name });
  } catch (e) {
    // the version is published; retention runs again after the next merge
    log.warn(`retention failed: ${(e as Error).message}`, { pipeline: cfg.name });
  }
}

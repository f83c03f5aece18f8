import type { Store } from './store.js';

/**
 * The JSON of `GET /v1/pipelines` and `GET /v1/pipelines/{p}/history`: exactly what `cmerge status
 * --json` and `cmerge history --pipeline p --json` print (the CLI's status uses statusView itself;
 * test/daemon/api.test.ts compares the history). Scripts switch between the CLI and the API
 * without changing a key.
 */

/** Configured pipelines first (even if never used), then any only the database knows. */
export function pipelineNames(store: Store, configured: readonly string[]): string[] {
  return [...new Set([...configured, ...store.pipelines()])];
}

export function statusView(store: Store, names: readonly string[]) {
  const pipelines = store.status([...names]).map((row) => ({
    name: row.name,
    current_version: row.current_version,
    latest_version: row.latest_version,
    paused: row.paused,
    queued: row.queued,
    current_merge: row.current_merge && {
      checkpoint: row.current_merge.checkpoint,
      step: row.current_merge.step,
      started_at: row.current_merge.started_at,
      progress: row.current_merge.progress,
    },
    retrying: row.retrying,
    rejected: row.rejected.map((r) => ({
      name: r.name,
      reason: r.reason,
      quarantine: r.quarantine_path,
      rejected_at: r.rejected_at ?? r.arrived_at,
    })),
    waiting: row.waiting.map((w) => ({
      name: w.name,
      size: w.size,
      expected_size: w.expected_size,
      reason: w.reason,
      since: w.first_seen,
      last_change: w.last_change,
    })),
    engine: row.engine,
  }));
  return { pipelines };
}

/**
 * The merges (failed and interrupted ones too) of `pipeline`, or of every pipeline of `names`,
 * with their timings and versions' publication times, and each pipeline's accuracy summary.
 */
export function historyView(store: Store, names: readonly string[], pipeline?: string) {
  const shown = pipeline === undefined ? names : [pipeline];
  const merges = new Map(store.merges(pipeline).map((m) => [m.id, m]));
  const published = new Map(
    shown.flatMap((name) => store.versions(name, { includeRemoved: true }).map((v) => [v.merge_id, v.created_at])),
  );
  const history = store.history(pipeline).map((row) => {
    const merge = merges.get(row.merge_id);
    return {
      ...row,
      params: merge?.params ?? {},
      timings: merge?.timings ?? null,
      peak_rss: merge?.peak_rss ?? null,
      created_at: published.get(row.merge_id) ?? null,
    };
  });
  return { history, pipelines: shown.map((name) => ({ name, accuracy: store.accuracySummary(name) })) };
}

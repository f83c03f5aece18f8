/**
 * Numbered schema migrations. Migration N brings `PRAGMA user_version` from N-1 to N; each runs in
 * its own IMMEDIATE transaction together with the version bump, so a crash mid-migration leaves
 * the previous version intact. Never edit a released migration: append a new one.
 *
 * Conventions: times are ISO-8601 UTC text; JSON columns hold JSON text; ids are AUTOINCREMENT so
 * a deleted row's id is never reused (checkpoint ids double as the queue's arrival order).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE pipelines (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  name             TEXT NOT NULL UNIQUE,
  created_at       TEXT NOT NULL,
  -- step t of the last committed merge (0: nothing merged yet)
  merged_count     INTEGER NOT NULL DEFAULT 0,
  -- the merge-state generation the daemon resumes from (docs/architecture.md#durable-state); NULL: start from the base
  state_generation INTEGER,
  state_path       TEXT,
  state_sha256     TEXT
);

CREATE TABLE checkpoints (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order = queue position
  pipeline_id     INTEGER NOT NULL REFERENCES pipelines(id),
  name            TEXT NOT NULL,
  path            TEXT NOT NULL,                      -- as dropped
  quarantine_path TEXT,
  sha256          TEXT,                               -- NULL when rejected before hashing
  size            INTEGER,
  arrived_at      TEXT NOT NULL,
  status          TEXT NOT NULL CHECK (status IN ('queued', 'merging', 'merged', 'rejected')),
  reason          TEXT,
  step            INTEGER,                            -- t, once merged
  merged_at       TEXT,
  CHECK ((status = 'merged') = (step IS NOT NULL)),
  CHECK ((status = 'rejected') = (reason IS NOT NULL))
);
CREATE INDEX checkpoints_queue ON checkpoints(pipeline_id, status, id);
-- exactly-once, enforced by the database itself: one live row per content per pipeline,
-- one checkpoint per step, at most one merge in flight per pipeline
CREATE UNIQUE INDEX checkpoints_live_sha ON checkpoints(pipeline_id, sha256)
  WHERE status IN ('queued', 'merging', 'merged');
CREATE UNIQUE INDEX checkpoints_step ON checkpoints(pipeline_id, step) WHERE step IS NOT NULL;
CREATE UNIQUE INDEX checkpoints_one_merging ON checkpoints(pipeline_id) WHERE status = 'merging';
CREATE INDEX checkpoints_path ON checkpoints(pipeline_id, path);

CREATE TABLE merges (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  checkpoint_id    INTEGER NOT NULL REFERENCES checkpoints(id),
  pipeline_id      INTEGER NOT NULL REFERENCES pipelines(id),
  step             INTEGER NOT NULL,
  method           TEXT NOT NULL,
  params           TEXT NOT NULL,                     -- JSON
  engine           TEXT,
  started_at       TEXT NOT NULL,
  finished_at      TEXT,
  status           TEXT NOT NULL CHECK (status IN ('running', 'committed', 'failed', 'interrupted')),
  error            TEXT,
  timings          TEXT,                              -- JSON {phase: ms}
  peak_rss         INTEGER,
  scalars          TEXT,                              -- JSON, e.g. {"lambda": 1.7}
  state_generation INTEGER,
  state_path       TEXT,
  state_sha256     TEXT
);
CREATE INDEX merges_pipeline ON merges(pipeline_id, step);
CREATE INDEX merges_checkpoint ON merges(checkpoint_id);
CREATE UNIQUE INDEX merges_committed_step ON merges(pipeline_id, step) WHERE status = 'committed';
CREATE UNIQUE INDEX merges_committed_checkpoint ON merges(checkpoint_id) WHERE status = 'committed';

CREATE TABLE versions (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  pipeline_id     INTEGER NOT NULL REFERENCES pipelines(id),
  number          INTEGER NOT NULL CHECK (number >= 1),
  parent          INTEGER,
  merge_id        INTEGER NOT NULL UNIQUE REFERENCES merges(id),
  path            TEXT NOT NULL,
  files           TEXT NOT NULL,                      -- JSON {relative path: sha256}
  manifest_sha256 TEXT NOT NULL,
  created_at      TEXT NOT NULL,
  pinned          INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
  removed_at      TEXT,
  UNIQUE (pipeline_id, number)
);

CREATE TABLE tensor_metrics (
  merge_id       INTEGER NOT NULL REFERENCES merges(id),
  tensor         TEXT NOT NULL,
  kind           TEXT,                                -- linear | other
  tv_norm        REAL,                                -- ‖τt‖ over this tensor
  merged_norm    REAL,                                -- ‖M_t − θ0‖
  removed_share  REAL,                                -- OPCM ‖τ − cleaned‖ / ‖τ‖
  interference   REAL,                                -- ‖U_kᵀ Δ V_k‖ / ‖Δ‖
  split_rank     INTEGER,                             -- OPCM k
  extra          TEXT,                                -- JSON, method-specific (DOP losses, weights)
  PRIMARY KEY (merge_id, tensor)
) WITHOUT ROWID;

CREATE TABLE model_metrics (
  merge_id INTEGER NOT NULL REFERENCES merges(id),
  name     TEXT NOT NULL,
  value    REAL,
  PRIMARY KEY (merge_id, name)
) WITHOUT ROWID;

-- docs/architecture.md#metrics: ρ[t][i] = <M_t − θ0, τi> / ‖τi‖², estimated from sketches, for every task i ≤ t
CREATE TABLE retention (
  pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
  merge_id    INTEGER NOT NULL REFERENCES merges(id),
  step        INTEGER NOT NULL,                       -- t
  task        INTEGER NOT NULL,                       -- i (the step at which task i was merged)
  rho         REAL NOT NULL,
  PRIMARY KEY (pipeline_id, step, task)
) WITHOUT ROWID;

CREATE TABLE evaluations (
  version_id   INTEGER NOT NULL REFERENCES versions(id),
  task         TEXT NOT NULL,
  score        REAL NOT NULL,
  evaluated_at TEXT NOT NULL,
  PRIMARY KEY (version_id, task)
) WITHOUT ROWID;

CREATE TABLE notifications (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  version_id INTEGER NOT NULL REFERENCES versions(id),
  notifier   TEXT NOT NULL,
  attempt    INTEGER NOT NULL,
  outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'failed')),
  detail     TEXT,
  duration_ms INTEGER,
  at         TEXT NOT NULL
);
CREATE INDEX notifications_version ON notifications(version_id);
`,
  },
  {
    version: 2,
    name: 'progress of the running merge',
    sql: `
-- JSON {phase, done, total, at}: where the running merge is, for status readers (the daemon
-- writes it at most about once a second); NULL before its first report
ALTER TABLE merges ADD COLUMN progress TEXT;
`,
  },
  {
    version: 3,
    name: 'the engine of each merge and version, with its device figures',
    sql: `
-- JSON {name, device?, versions?, tf32?}: the engine that made the merge (engine keeps its name)
ALTER TABLE merges ADD COLUMN engine_info TEXT;
-- device time, the most device memory held at once, operations that fell back to the CPU engine:
-- NULL for the CPU engines
ALTER TABLE merges ADD COLUMN gpu_seconds REAL;
ALTER TABLE merges ADD COLUMN peak_device_bytes INTEGER;
ALTER TABLE merges ADD COLUMN cpu_fallbacks INTEGER;
-- what a replay of the version (rollback, revert) reads: its merge's engine_info
ALTER TABLE versions ADD COLUMN engine TEXT;
-- earlier merges recorded only the engine's name (native or portable), which is all they used
UPDATE merges SET engine_info = json_object('name', engine) WHERE status = 'committed' AND engine IS NOT NULL;
UPDATE versions SET engine = (SELECT engine_info FROM merges m WHERE m.id = versions.merge_id);
`,
  },
  {
    version: 4,
    name: 'checkpoints that were LoRA adapters',
    sql: `
-- JSON {r, alpha, use_rslora, target_tensors, target_modules, modules_to_save, config_sha256,
-- weights_sha256} (types.ts AdapterRecord) when the checkpoint was a PEFT LoRA adapter folder
-- (docs/lora.md), recorded at intake; NULL for full checkpoints and for rejected entries
ALTER TABLE checkpoints ADD COLUMN adapter TEXT;
`,
  },
  {
    version: 5,
    name: 'the dtype each checkpoint was stored in',
    sql: `
-- the float dtypes of the checkpoint's tensors ("F32", or e.g. "BF16+F32" when mixed; an adapter's
-- weights'), which may differ from the base's; recorded when merged. NULL for checkpoints merged
-- before this migration and for those not merged
ALTER TABLE checkpoints ADD COLUMN dtype TEXT;
`,
  },
  {
    version: 6,
    name: 'versions are publication ids, not steps: rollback, revert, pause, the operations log',
    sql: `
-- the version \`current\` points at (after a rollback it is not the newest); NULL before the first
ALTER TABLE pipelines ADD COLUMN current_version INTEGER;
UPDATE pipelines SET current_version = (SELECT MAX(number) FROM versions v WHERE v.pipeline_id = pipelines.id);
-- merging paused by an operator (or by the daemon, e.g. for disk space): since when and why
ALTER TABLE pipelines ADD COLUMN paused_at TEXT;
ALTER TABLE pipelines ADD COLUMN pause_reason TEXT;

-- a merged checkpoint taken out of the current lineage: by a rollback before it, or by a revert of
-- itself. It keeps status 'merged' and its old step (history); retired rows are not live, so the
-- same content may be dropped and merged again
ALTER TABLE checkpoints ADD COLUMN retired TEXT CHECK (retired IN ('rolled_back', 'reverted'));
ALTER TABLE checkpoints ADD COLUMN retired_at TEXT;
DROP INDEX checkpoints_live_sha;
CREATE UNIQUE INDEX checkpoints_live_sha ON checkpoints(pipeline_id, sha256)
  WHERE status IN ('queued', 'merging', 'merged') AND retired IS NULL;
DROP INDEX checkpoints_step;
CREATE UNIQUE INDEX checkpoints_step ON checkpoints(pipeline_id, step) WHERE step IS NOT NULL AND retired IS NULL;

-- 'revert': the merge that rebuilt a lineage without one checkpoint (checkpoint_id: the one taken
-- out); its step is the new lineage's length. After a rollback a step is merged again, so
-- committed merges are no longer unique per step
ALTER TABLE merges ADD COLUMN kind TEXT NOT NULL DEFAULT 'merge' CHECK (kind IN ('merge', 'revert'));
DROP INDEX merges_committed_step;
CREATE INDEX merges_committed_step ON merges(pipeline_id, step) WHERE status = 'committed';
DROP INDEX merges_committed_checkpoint;
CREATE UNIQUE INDEX merges_committed_checkpoint ON merges(checkpoint_id) WHERE status = 'committed' AND kind = 'merge';

-- JSON [checkpoint id, ...] in merge order: the checkpoints the version holds (its step = length)
ALTER TABLE versions ADD COLUMN lineage TEXT;
UPDATE versions SET lineage = (
  SELECT json_group_array(id) FROM (
    SELECT c.id FROM checkpoints c JOIN merges m ON m.id = versions.merge_id
    WHERE c.pipeline_id = versions.pipeline_id AND c.status = 'merged' AND c.step <= m.step ORDER BY c.step));

-- retention rows belong to the merge that measured them (a step is merged again after a rollback)
CREATE TABLE retention_by_merge (
  pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
  merge_id    INTEGER NOT NULL REFERENCES merges(id),
  step        INTEGER NOT NULL,
  task        INTEGER NOT NULL,
  rho         REAL NOT NULL,
  PRIMARY KEY (merge_id, task)
) WITHOUT ROWID;
INSERT INTO retention_by_merge SELECT pipeline_id, merge_id, step, task, rho FROM retention;
DROP TABLE retention;
ALTER TABLE retention_by_merge RENAME TO retention;

-- what operators did: rollback, revert, pin, unpin, pause, resume (and the daemon's own pauses)
CREATE TABLE operations (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  pipeline_id INTEGER NOT NULL REFERENCES pipelines(id),
  kind        TEXT NOT NULL,
  args        TEXT NOT NULL,                       -- JSON
  at          TEXT NOT NULL,
  via         TEXT NOT NULL,                       -- api | cli | daemon
  outcome     TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
  detail      TEXT
);
CREATE INDEX operations_pipeline ON operations(pipeline_id, id);
`,
  },
  {
    version: 7,
    name: 'drop-folder entries waiting to be complete',
    sql: `
-- an entry of the drop folder that is not complete yet (a file shorter than its header says, a
-- missing shard or adapter file): what \`cmerge status\` shows while the daemon waits, and when it
-- last changed, so that a restart does not restart the incomplete timeout (docs/architecture.md,
-- intake). The row goes when the entry is taken (queued or rejected) or disappears
CREATE TABLE intake_waiting (
  pipeline_id   INTEGER NOT NULL REFERENCES pipelines(id),
  path          TEXT NOT NULL,                      -- as dropped (absolute)
  name          TEXT NOT NULL,
  size          INTEGER NOT NULL,                   -- bytes so far (a folder: its weight files)
  expected_size INTEGER,                            -- what the header(s) say, NULL when not known yet
  reason        TEXT NOT NULL CHECK (reason IN ('growing', 'missing_shard', 'missing_adapter_file', 'no_weights')),
  signature     TEXT NOT NULL,                      -- sizes and mtimes at last_change
  first_seen    TEXT NOT NULL,
  last_change   TEXT NOT NULL,                      -- the incomplete timeout counts from here
  PRIMARY KEY (pipeline_id, path)
) WITHOUT ROWID;
`,
  },
  {
    version: 8,
    name: 'swap-pending record, who paused, requeued rejections',
    sql: `
-- the version \`current\` is being moved to: set with current_version in the same transaction,
-- cleared once the symlink points there. At start, a \`current\` that differs from current_version
-- with no swap pending was moved by hand: the pipeline pauses instead of undoing it (docs/operations.md)
ALTER TABLE pipelines ADD COLUMN swap_pending INTEGER;
-- who paused merging: 'operator', or the daemon for a hand-moved \`current\` ('current_moved')
ALTER TABLE pipelines ADD COLUMN pause_kind TEXT;
-- a rejection an operator cleared with \`cmerge requeue\` (the file moved back to the drop folder):
-- kept for history, no longer listed as rejected nor matched by path
ALTER TABLE checkpoints ADD COLUMN requeued_at TEXT;
-- when a checkpoint was rejected (at intake, during its merge, by the quality gate, or dequeued);
-- NULL for rejections recorded before this migration (their arrival is the best estimate)
ALTER TABLE checkpoints ADD COLUMN rejected_at TEXT;
`,
  },
  {
    version: 9,
    name: 'merged checkpoints archived',
    sql: `
-- where a merged checkpoint is moved to (config \`archive\`, docs/operations.md), recorded before
-- the move; archived_at once it is there. An archived checkpoint no longer owns its drop path:
-- a new file dropped under that name is a new arrival
ALTER TABLE checkpoints ADD COLUMN archive_path TEXT;
ALTER TABLE checkpoints ADD COLUMN archived_at TEXT;
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

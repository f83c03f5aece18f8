/**
 * The state `cmerge report` is tested on (not a test file itself), written through the store API
 * with the daemon's own sequence of calls and record shapes (PipelineRunner.commit:
 * commitMergeAndVersion with the model metrics of src/daemon/metrics.ts and timings in seconds;
 * notifications, evaluator scores, rollback, revert, pin, retention, the operations log).
 *
 * - clip (opcm, evaluator): ck-a, ck-b, ck-c, ck-d merged as versions 1-4; rolled back to 3 (ck-d
 *   rolled back); ck-e, ck-f merged as versions 5, 6; version 2 pinned, version 1 removed by
 *   retention; bad.safetensors rejected at intake, ck-nan rejected by its merge; ck-g queued.
 *   One checkpoint's name holds HTML (`ck-<b>&"b"`): file names are not to be trusted.
 * - text (task_arithmetic, no evaluator): t1, t2, t3 merged, then t2 reverted (version 4).
 * - idle: configured, nothing dropped.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { openStore, type CommitMergeInput, type Store } from '../../src/store/index.js';
import { tempDir } from '../helpers/paths.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const CONFIG = `state_dir: ./state
pipelines:
  - name: clip
    base: ./base.safetensors
    drop: ./drop/clip
    repository: ./models
    method: opcm
    params: { alpha: 0.5 }
  - name: text
    base: ./base.safetensors
    drop: ./drop/text
    repository: ./models
    method: task_arithmetic
  - name: idle
    base: ./base.safetensors
    drop: ./drop/idle
    repository: ./models
    method: weight_average
`;

export const HTML_NAME = 'ck-<b>&"b"';
const CLIP = ['ck-a', HTML_NAME, 'ck-c', 'ck-d', 'ck-e', 'ck-f', 'ck-nan', 'ck-g'];

export interface ReportFixture {
  root: string;
  cfg: string;
  dbPath: string;
}

interface Ctx {
  store: Store;
  root: string;
  pipeline: string;
}

function enqueue({ store, root, pipeline }: Ctx, name: string): void {
  const file = `${name}.safetensors`;
  store.enqueue(pipeline, { name: file, path: join(root, 'drop', pipeline, file), sha256: sha(name), size: 4096 });
}

/**
 * The figures the daemon records for a merge at `step` (opcm: λ, removed share, interference);
 * `other` sets apart a step merged again (after a rollback or revert) from the first merge of it.
 */
function figures(step: number, opcm: boolean, other = 0): Omit<CommitMergeInput, 'merge_id' | 'state'> {
  const lambda = 1 + 0.35 * Math.log(step) - 0.1 * other;
  const model: Record<string, number | null> = {
    task_vector_norm: 3 + 0.2 * step + 0.4 * other,
    merged_task_vector_norm: 2.5 + 0.5 * Math.sqrt(step) - 0.3 * other,
    removed_share: opcm && step > 1 ? 0.1 + 0.04 * step + 0.05 * other : null,
    interference: opcm && step > 1 ? 0.3 / step + 0.03 * other : null,
    ...(opcm ? { lambda } : {}),
  };
  return {
    scalars: opcm ? { lambda } : ({} as Record<string, number>),
    model_metrics: model,
    tensor_metrics: [
      {
        tensor: 'fc.weight',
        kind: 'linear' as const,
        tv_norm: 2.5,
        merged_norm: 2,
        removed_share: model.removed_share,
      },
      { tensor: 'fc.bias', kind: 'other' as const, tv_norm: 0.4, merged_norm: 0.3 },
    ],
    retention: Array.from({ length: step }, (_, i) => ({ task: i + 1, rho: 1 - 0.07 * (step - i - 1) - 0.01 * i })),
    timings: {
      merge_s: 0.6 * step,
      update_s: 0.5 * step,
      analysis_s: 0,
      output_s: 0.1,
      total_s: 0.7 + 0.3 * step + 0.2 * other,
    },
  };
}

/** Merge the queue head and publish it as version `number` (PipelineRunner's commit), then notify. */
function mergeHead(ctx: Ctx, number: number, parent: number | null, opcm: boolean): void {
  const { store, root, pipeline } = ctx;
  const head = store.nextQueued(pipeline)!;
  const method = opcm ? 'opcm' : 'task_arithmetic';
  const { merge } = store.markMerging(head.id, { method, params: { alpha: 0.5 }, engine: 'native' });
  const f = figures(merge.step, opcm, number - merge.step);
  store.commitMergeAndVersion(
    {
      merge_id: merge.id,
      state: { generation: number, path: join(root, 'state', pipeline, `gen-${number}`), sha256: sha(`s${number}`) },
      engine: 'native',
      engine_info: { name: 'native' },
      peak_rss: 2e8,
      ...f,
    },
    {
      pipeline,
      number,
      parent,
      path: join(root, 'models', pipeline, String(number)),
      files: { 'model.safetensors': sha(`m${number}`) },
      manifest_sha256: sha(`manifest-${pipeline}-${number}`),
    },
  );
  store.recordNotification(pipeline, number, { notifier: 'vllm', attempt: 1, ok: number !== 2, detail: 'HTTP 200' });
  if (number === 2)
    store.recordNotification(pipeline, 2, { notifier: 'vllm', attempt: 2, ok: true, detail: 'HTTP 200' });
}

/** The evaluator's scores of the lineage's tasks on version `number` (older tasks slowly forgotten). */
function evaluate(ctx: Ctx, number: number): void {
  const lineage = ctx.store.mergedCheckpoints(ctx.pipeline).map((c) => c.name.replace(/\.safetensors$/, ''));
  const t = lineage.length;
  const scores = Object.fromEntries(lineage.map((task, i) => [task, 0.92 - 0.05 * (t - i - 1) - 0.01 * i]));
  ctx.store.recordEvaluation(ctx.pipeline, number, scores);
}

function buildClip(ctx: Ctx): void {
  const { store, root } = ctx;
  for (const name of CLIP) enqueue(ctx, name);
  store.reject(
    'clip',
    { name: 'bad.safetensors', path: join(root, 'drop', 'clip', 'bad.safetensors') },
    'not safetensors: header length 9e15 past end of file (12 bytes)',
    join(root, 'drop', 'clip', '.quarantine', 'bad.safetensors'),
  );
  for (const n of [1, 2, 3, 4]) {
    mergeHead(ctx, n, n > 1 ? n - 1 : null, true);
    evaluate(ctx, n);
  }
  store.rollbackTo('clip', 3, { generation: 3, path: join(root, 'state', 'clip', 'gen-3') });
  store.recordOperation({
    pipeline: 'clip',
    kind: 'rollback',
    args: { to: 3 },
    via: 'cli',
    outcome: 'ok',
    detail: null,
  });
  mergeHead(ctx, 5, 3, true);
  evaluate(ctx, 5);
  mergeHead(ctx, 6, 5, true);
  evaluate(ctx, 6);
  const nan = store.nextQueued('clip')!;
  const { merge } = store.markMerging(nan.id, { method: 'opcm', params: { alpha: 0.5 } });
  store.failMerge(merge.id, 'NaN in fc.weight[3, 1]', join(root, 'drop', 'clip', '.quarantine', 'ck-nan.safetensors'));
  store.pin('clip', 2);
  store.recordOperation({
    pipeline: 'clip',
    kind: 'pin',
    args: { version: 2 },
    via: 'api',
    outcome: 'ok',
    detail: null,
  });
  store.recordOperation({
    pipeline: 'clip',
    kind: 'revert',
    args: { checkpoint: 'ck-a.safetensors' },
    via: 'api',
    outcome: 'refused',
    detail: 'a merge of "clip" is in flight',
  });
  store.markRemoved('clip', 1);
}

function buildText(ctx: Ctx): void {
  const { store, root } = ctx;
  for (const name of ['t1', 't2', 't3']) enqueue(ctx, name);
  for (const n of [1, 2, 3]) mergeHead(ctx, n, n > 1 ? n - 1 : null, false);
  const t2 = store.mergedCheckpoints('text').find((c) => c.name === 't2.safetensors')!;
  store.commitRevert(
    'text',
    t2.id,
    {
      method: 'task_arithmetic',
      params: {},
      state: { generation: 4, path: join(root, 'state', 'text', 'gen-4') },
      ...figures(2, false, 2),
    },
    { number: 4, parent: 3, path: join(root, 'models', 'text', '4'), files: {}, manifest_sha256: sha('text-4') },
  );
  store.recordOperation({
    pipeline: 'text',
    kind: 'revert',
    args: { checkpoint: 't2' },
    via: 'cli',
    outcome: 'ok',
    detail: null,
  });
}

export function buildReportFixture(): ReportFixture {
  const root = tempDir('cmerge-report-');
  const cfg = join(root, 'cmerge.yaml');
  writeFileSync(cfg, CONFIG);
  // the inspection commands refuse a config whose base does not exist; they never read it
  writeFileSync(join(root, 'base.safetensors'), '');
  const dbPath = loadConfig(cfg).db_path;
  const store = openStore(dbPath);
  try {
    buildClip({ store, root, pipeline: 'clip' });
    buildText({ store, root, pipeline: 'text' });
  } finally {
    store.close();
  }
  return { root, cfg, dbPath };
}

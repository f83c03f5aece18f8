/**
 * status / history / show / verify as the real CLI process, over a database and version folders
 * built with the real store and publish APIs (the same calls the daemon makes).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { beginVersion, finishVersion, sha256File, swapCurrent } from '../../src/publish/index.js';
import { openStore, type Store } from '../../src/store/index.js';
import { cmerge } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

interface Fixture {
  root: string;
  cfg: string;
  dbPath: string;
  repo: string;
  stateDir: string;
}

const CONFIG = `state_dir: ./state
pipelines:
  - name: clip
    base: ./base.safetensors
    drop: ./drop/clip
    repository: ./models
    method: opcm
    params: { alpha: 0.5 }
  - name: idle
    base: ./base.safetensors
    drop: ./drop/idle
    repository: ./models
    method: weight_average
`;

/** Version 1 was made on the GPU: its engine as the cuda engine reports it, and its device figures. */
const CUDA = {
  name: 'cuda',
  device: '0: NVIDIA H200 (sm_90, 139.8 GiB)',
  versions: { driver: '13.0', cublas: '13.1.0' },
  tf32: false,
};
const GPU = { gpu_seconds: 1.5, peak_device_bytes: 3 * 2 ** 30, cpu_fallbacks: 0 };

/** Merge the queue head at `step` and publish it as version `step`, the daemon's sequence of calls. */
async function mergeAndPublish(store: Store, f: Fixture, step: number): Promise<void> {
  const engine = step === 1 ? 'cuda' : 'portable';
  const head = store.nextQueued('clip')!;
  const { merge } = store.markMerging(head.id, { method: 'opcm', params: { alpha: 0.5 }, engine: 'portable' });
  assert.equal(merge.step, step);
  const gen = join(f.stateDir, 'pipelines', 'clip', 'state', `gen-${String(step).padStart(8, '0')}`);
  mkdirSync(gen, { recursive: true });
  writeFileSync(join(gen, 'state.safetensors'), randomBytes(512));
  writeFileSync(join(gen, 'state.json'), JSON.stringify({ step }));
  store.commitMerge({
    merge_id: merge.id,
    state: { generation: step, path: gen, sha256: await sha256File(join(gen, 'state.safetensors')) },
    engine,
    engine_info: step === 1 ? CUDA : { name: engine },
    gpu: step === 1 ? GPU : null,
    timings: { analysis: 100 * step, update: 50 * step },
    peak_rss: 1e8,
    scalars: { lambda: 1 + step / 10 },
    tensor_metrics: [
      {
        tensor: 'a.weight',
        kind: 'linear',
        tv_norm: 2,
        merged_norm: 3,
        removed_share: 0.25,
        interference: 0.5,
        split_rank: 4,
      },
      {
        tensor: 'b.weight',
        kind: 'linear',
        tv_norm: 4,
        merged_norm: 5,
        removed_share: 0.75,
        interference: 0.1,
        split_rank: 2,
      },
      { tensor: 'a.bias', kind: 'other', tv_norm: 1, merged_norm: 1 },
    ],
    model_metrics: { tv_norm: 4.5, removed_share: 0.6 },
    retention: Array.from({ length: step }, (_, i) => ({ task: i + 1, rho: 1 - 0.1 * (step - i - 1) })),
  });

  const s = await beginVersion(f.repo, 'clip', step);
  writeFileSync(join(s.dir, 'model.safetensors'), randomBytes(1024));
  const v = await finishVersion(s, {
    parent: step > 1 ? step - 1 : null,
    method: 'opcm',
    params: { alpha: 0.5 },
    base: { path: join(f.root, 'base.safetensors'), sha256: sha('base') },
    checkpoints: store
      .mergedCheckpoints('clip')
      .map((c) => ({ name: c.name, sha256: c.sha256!, merged_at: c.merged_at! })),
    engine,
    metrics: { lambda: 1 + step / 10 },
  });
  await swapCurrent(f.repo, 'clip', step);
  store.recordVersion({
    pipeline: 'clip',
    number: step,
    parent: step > 1 ? step - 1 : null,
    merge_id: merge.id,
    path: v.dir,
    files: v.manifest.files,
    manifest_sha256: await sha256File(join(v.dir, 'manifest.json')),
  });
  store.recordNotification('clip', step, {
    notifier: 'sglang',
    attempt: 1,
    ok: false,
    detail: 'HTTP 503',
    duration_ms: 12,
  });
  store.recordNotification('clip', step, {
    notifier: 'sglang',
    attempt: 2,
    ok: true,
    detail: 'HTTP 200',
    duration_ms: 30,
  });
  store.recordEvaluation('clip', step, { 'ck-a': 0.9 - 0.05 * (step - 1), 'ck-b': 0.8 });
}

/**
 * clip: a, b merged and published as versions 1 and 2; c merging now; d queued; bad.safetensors
 * rejected. idle: configured, never used.
 */
async function buildFixture(): Promise<Fixture> {
  const root = tempDir('cmerge-inspect-');
  const cfg = join(root, 'cmerge.yaml');
  writeFileSync(cfg, CONFIG);
  // the inspection commands refuse a config whose base does not exist; they never read it
  writeFileSync(join(root, 'base.safetensors'), '');
  const config = loadConfig(cfg);
  const f: Fixture = { root, cfg, dbPath: config.db_path, repo: join(root, 'models'), stateDir: config.state_dir };
  const store = openStore(f.dbPath);
  try {
    for (const n of ['a', 'b', 'c', 'd']) {
      store.enqueue('clip', {
        name: `ck-${n}.safetensors`,
        path: join(root, 'drop', 'clip', `ck-${n}.safetensors`),
        sha256: sha(n),
        size: 1000,
      });
    }
    store.reject(
      'clip',
      { name: 'bad.safetensors', path: join(root, 'drop', 'clip', 'bad.safetensors') },
      'not safetensors: header length past end of file',
      join(root, 'drop', 'clip', '.quarantine', 'bad.safetensors'),
    );
    await mergeAndPublish(store, f, 1);
    await mergeAndPublish(store, f, 2);
    const running = store.markMerging(store.nextQueued('clip')!.id, { method: 'opcm', params: { alpha: 0.5 } }).merge;
    store.setMergeProgress(running.id, { phase: 'update', done: 5, total: 20, at: '2026-11-23T15:00:00.000Z' });
  } finally {
    store.close();
  }
  return f;
}

let f: Fixture;
before(async () => {
  f = await buildFixture();
});

const json = (args: string[]) => {
  const r = cmerge(args);
  assert.equal(r.stderr, '', `no stderr from cmerge ${args.join(' ')}`);
  return { status: r.status, out: JSON.parse(r.stdout) };
};

test('status --json: per pipeline name, current_version, queued, current_merge, retrying, rejected', () => {
  const { status, out } = json(['status', '--config', f.cfg, '--json']);
  assert.equal(status, 0);
  assert.equal(typeof out.pipelines[0].current_merge.started_at, 'string');
  out.pipelines[0].current_merge.started_at = '<time>';
  assert.ok(
    Date.now() - Date.parse(out.pipelines[0].rejected[0].rejected_at) < 600_000,
    'rejected_at: when it was rejected',
  );
  out.pipelines[0].rejected[0].rejected_at = '<time>';
  assert.deepEqual(out, {
    pipelines: [
      {
        name: 'clip',
        current_version: 2,
        latest_version: 2,
        paused: null,
        queued: 1,
        current_merge: {
          checkpoint: 'ck-c.safetensors',
          step: 3,
          started_at: '<time>',
          progress: { phase: 'update', done: 5, total: 20, at: '2026-11-23T15:00:00.000Z' },
        },
        retrying: null,
        rejected: [
          {
            name: 'bad.safetensors',
            reason: 'not safetensors: header length past end of file',
            quarantine: join(f.root, 'drop', 'clip', '.quarantine', 'bad.safetensors'),
            rejected_at: '<time>',
          },
        ],
        waiting: [],
        engine: { step: 2, info: { name: 'portable' }, gpu: null },
      },
      {
        name: 'idle',
        current_version: null,
        latest_version: null,
        paused: null,
        queued: 0,
        current_merge: null,
        retrying: null,
        rejected: [],
        waiting: [],
        engine: null,
      },
    ],
  });
});

test('status text: a table, queued names and rejection reasons', () => {
  const r = cmerge(['status', '--config', f.cfg]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^PIPELINE\s+VERSION\s+QUEUED\s+MERGING\s+REJECTED/);
  assert.match(r.stdout, /clip\s+2\s+1\s+ck-c\.safetensors \(step 3, update 25 %, since /);
  assert.match(r.stdout, /idle\s+-\s+0\s+-\s+0/);
  assert.match(r.stdout, /queued, in merge order: ck-d\.safetensors/);
  assert.match(r.stdout, /bad\.safetensors: not safetensors/);
  assert.match(r.stdout, /^clip: engine portable \(last merge, step 2\), configured auto$/m);
  assert.match(r.stdout, /^idle: engine - \(no merge yet\), configured auto$/m);
});

test('history --json: merges in order with sha256, step, method, scalars, timings, version, created_at', () => {
  const { status, out } = json(['history', '--config', f.cfg, '--json']);
  assert.equal(status, 0);
  const h = out.history as Record<string, unknown>[];
  assert.deepEqual(
    h.map((e) => [e.pipeline, e.step, e.checkpoint, e.status, e.version]),
    [
      ['clip', 1, 'ck-a.safetensors', 'committed', 1],
      ['clip', 2, 'ck-b.safetensors', 'committed', 2],
      ['clip', 3, 'ck-c.safetensors', 'running', null],
    ],
  );
  assert.equal(h[0]!.sha256, sha('a'));
  assert.equal(h[1]!.method, 'opcm');
  assert.deepEqual(h[1]!.params, { alpha: 0.5 });
  assert.deepEqual(h[1]!.scalars, { lambda: 1.2 });
  assert.deepEqual(h[1]!.timings, { analysis: 200, update: 100 });
  assert.equal(typeof h[1]!.created_at, 'string');
  assert.equal(typeof h[1]!.duration_ms, 'number');
  assert.equal(h[2]!.created_at, null);
  assert.deepEqual(
    h.map((e) => [e.engine, e.engine_info, e.gpu]),
    [
      ['cuda', CUDA, GPU],
      ['portable', { name: 'portable' }, null],
      [null, null, null],
    ],
  );

  // ck-a scored 0.9 then 0.85, ck-b 0.8 twice (mergeAndPublish)
  const clipAccuracy = out.pipelines[0].accuracy;
  assert.deepEqual(out.pipelines[0].name, 'clip');
  assert.deepEqual(clipAccuracy.steps, [1, 2]);
  assert.deepEqual(clipAccuracy.tasks, ['ck-a', 'ck-b']);
  assert.deepEqual(clipAccuracy.matrix, [
    [0.9, 0.8],
    [0.9 - 0.05, 0.8],
  ]);
  assert.ok(Math.abs(clipAccuracy.average_accuracy - 0.825) < 1e-12);
  assert.ok(Math.abs(clipAccuracy.bwt - -0.05) < 1e-12);
  assert.ok(Math.abs(clipAccuracy.forgetting - 0.05) < 1e-12);
  assert.deepEqual(json(['history', '--config', f.cfg, '--pipeline', 'idle', '--json']).out, {
    history: [],
    pipelines: [
      {
        name: 'idle',
        accuracy: { steps: [], tasks: [], matrix: [], average_accuracy: null, bwt: null, forgetting: null },
      },
    ],
  });
  const text = cmerge(['history', '--config', f.cfg, '--pipeline', 'clip']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    new RegExp(
      `clip\\s+1\\s+1\\s+committed\\s+ck-a\\.safetensors\\s+${sha('a').slice(0, 12)}\\s+opcm\\s+cuda:0\\s+1\\.50 s, 3\\.0 GiB\\s+λ=1\\.1`,
    ),
  );
  assert.match(text.stdout, /ck-b\.safetensors\s+\S+\s+opcm\s+portable\s+-\s+λ=1\.2/);
  assert.match(
    text.stdout,
    /^clip: accuracy \(rows: merge step, columns: task\)\nSTEP\s+ck-a\s+ck-b\n1\s+0\.9\s+0\.8\n2\s+0\.85\s+0\.8\nACC 0\.825 {2}BWT -0\.05 {2}forgetting 0\.05$/m,
  );
  const unknown = cmerge(['history', '--config', f.cfg, '--pipeline', 'nope']);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /^cmerge: unknown pipeline "nope".*\n$/);
});

test('show --json: manifest summary, checkpoints in merge order, metrics, retention row, notifications, evaluations', () => {
  const { status, out } = json(['show', '--config', f.cfg, 'clip', '2', '--json']);
  assert.equal(status, 0);
  assert.equal(out.version, 2);
  assert.equal(out.parent, 1);
  assert.equal(out.path, join(f.repo, 'clip', '2'));
  assert.equal(out.manifest_error, null);
  assert.equal(out.manifest.method, 'opcm');
  assert.equal(out.manifest.checkpoints, 2);
  assert.ok(out.manifest.files >= 2, 'model.safetensors and README.md');
  assert.ok(out.manifest.total_bytes > 1024);
  assert.deepEqual(
    out.checkpoints.map((c: { step: number; name: string; sha256: string }) => [c.step, c.name, c.sha256]),
    [
      [1, 'ck-a.safetensors', sha('a')],
      [2, 'ck-b.safetensors', sha('b')],
    ],
  );
  assert.deepEqual(out.model_metrics, { removed_share: 0.6, tv_norm: 4.5 });
  assert.equal(out.tensor_metrics.length, 3);
  assert.deepEqual(out.tensor_summary.kinds, { linear: 2, other: 1 });
  assert.deepEqual(out.tensor_summary.stats.removed_share, { n: 2, min: 0.25, mean: 0.5, max: 0.75 });
  assert.deepEqual(out.tensor_summary.most_interference[0], { tensor: 'a.weight', interference: 0.5 });
  assert.deepEqual(out.retention, [
    { task: 1, rho: 0.9 },
    { task: 2, rho: 1 },
  ]);
  assert.deepEqual(
    out.notifications.map((n: { attempt: number; outcome: string }) => [n.attempt, n.outcome]),
    [
      [1, 'failed'],
      [2, 'ok'],
    ],
  );
  assert.deepEqual(
    out.evaluations.map((e: { task: string; score: number }) => [e.task, e.score]),
    [
      ['ck-a', 0.85],
      ['ck-b', 0.8],
    ],
  );
  assert.deepEqual(out.merge.scalars, { lambda: 1.2 });
  assert.deepEqual([out.engine, out.merge.engine, out.merge.gpu], [{ name: 'portable' }, 'portable', null]);
  const v1 = json(['show', '--config', f.cfg, 'clip', '1', '--json']).out;
  assert.deepEqual([v1.engine, v1.merge.gpu], [CUDA, GPU], 'the version keeps the engine it was made with');

  const text = cmerge(['show', '--config', f.cfg, 'clip', '1']);
  assert.equal(text.status, 0, text.stderr);
  for (const s of [
    'clip version 1',
    'ck-a.safetensors',
    'λ=1.1',
    'per-tensor metrics: 3 tensors',
    'retention',
    'sglang',
    'evaluations',
    'engine      cuda on 0: NVIDIA H200 (sm_90, 139.8 GiB) (driver 13.0, cublas 13.1.0)',
    'gpu         GPU 1.50 s, peak device memory 3.0 GiB',
  ]) {
    assert.ok(text.stdout.includes(s), `text show mentions ${s}`);
  }
});

test('show: unknown version and bad version argument are one-line errors', () => {
  const missing = cmerge(['show', '--config', f.cfg, 'clip', '9']);
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, 'cmerge: no version 9 of pipeline "clip" is recorded\n');
  const bad = cmerge(['show', '--config', f.cfg, 'clip', 'x1']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^cmerge: version must be a positive integer, got "x1"\n$/);
});

test('verify: clean store and repository exit 0', () => {
  const { status, out } = json(['verify', '--config', f.cfg, '--json']);
  assert.equal(status, 0, JSON.stringify(out.problems));
  assert.equal(out.ok, true);
  assert.deepEqual(out.problems, []);
  assert.deepEqual(out.checked, { pipelines: 2, versions: 2, files: out.checked.files, states: 1 });
  assert.ok(out.checked.files >= 4);
  const text = cmerge(['verify', '--config', f.cfg]);
  assert.equal(text.status, 0);
  assert.match(text.stdout, /^ok: 2 pipelines, 2 versions/m);
});

/** Damage something, run verify, undo the damage (later tests need the clean fixture). */
function damaged(
  apply: () => void,
  undo: () => void,
): {
  status: number | null;
  out: { ok: boolean; problems: Record<string, unknown>[]; notes: Record<string, unknown>[] };
  text: string;
} {
  apply();
  try {
    const { status, out } = json(['verify', '--config', f.cfg, '--json']);
    return { status, out, text: cmerge(['verify', '--config', f.cfg]).stdout };
  } finally {
    undo();
  }
}

function preserve(path: string): () => void {
  const bytes = readFileSync(path);
  return () => writeFileSync(path, bytes);
}

test('verify: a corrupted version file exits 1 naming the version and the file', () => {
  const model = join(f.repo, 'clip', '1', 'model.safetensors');
  const restore = preserve(model);
  // same size, different content: only the sha256 can catch it
  const r = damaged(() => {
    const b = readFileSync(model);
    b[100]! ^= 0xff;
    writeFileSync(model, b);
  }, restore);
  assert.equal(r.status, 1);
  assert.equal(r.out.ok, false);
  assert.deepEqual(
    r.out.problems.map((p) => [p.pipeline, p.version, p.kind, p.file]),
    [['clip', 1, 'hash', 'model.safetensors']],
  );
  assert.match(r.text, /^problem {2}clip v1: model\.safetensors: sha256 [0-9a-f]{64}, manifest says/m);
  assert.match(r.text, /^FAILED: /m);

  const truncated = damaged(() => appendFileSync(model, 'x'), restore);
  assert.deepEqual(
    truncated.out.problems.map((p) => [p.version, p.kind, p.file]),
    [[1, 'size', 'model.safetensors']],
  );
});

test('verify: a rewritten manifest, a missing version folder and an extra file are problems', () => {
  const manifest = join(f.repo, 'clip', '2', 'manifest.json');
  const restore = preserve(manifest);
  const r = damaged(
    () => writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('"engine": "portable"', '"engine": "native"')),
    restore,
  );
  assert.deepEqual(
    r.out.problems.map((p) => [p.version, p.kind, p.file]),
    [[2, 'manifest', 'manifest.json']],
  );

  const extra = join(f.repo, 'clip', '2', 'notes.txt');
  const r2 = damaged(
    () => writeFileSync(extra, 'hi'),
    () => rmSync(extra),
  );
  assert.deepEqual(
    r2.out.problems.map((p) => [p.version, p.kind, p.file]),
    [[2, 'extra', 'notes.txt']],
  );

  const v1 = join(f.repo, 'clip', '1');
  const away = join(f.repo, 'clip', '.away-1');
  const r3 = damaged(
    () => renameSync(v1, away),
    () => renameSync(away, v1),
  );
  assert.deepEqual(
    r3.out.problems.map((p) => [p.version, p.kind, p.message]),
    [[1, 'missing', `version folder ${v1} is missing`]],
  );
});

test('verify: current pointing at an older version is a problem', () => {
  const link = join(f.repo, 'clip', 'current');
  const r = damaged(
    () => {
      rmSync(link);
      symlinkSync('1', link);
    },
    () => {
      rmSync(link);
      symlinkSync('2', link);
    },
  );
  assert.equal(r.status, 1);
  assert.deepEqual(
    r.out.problems.map((p) => [p.kind, p.version]),
    [['current', 1]],
  );
  assert.match(r.text, /current -> 1, but the newest recorded live version is 2/);
});

test('verify: a merge state whose sha256 differs from the recorded one, or is missing, is a problem', () => {
  const file = join(f.stateDir, 'pipelines', 'clip', 'state', 'gen-00000002', 'state.safetensors');
  const restore = preserve(file);
  const r = damaged(() => {
    const b = readFileSync(file);
    b[0]! ^= 1;
    writeFileSync(file, b);
  }, restore);
  assert.equal(r.status, 1);
  assert.deepEqual(
    r.out.problems.map((p) => [p.pipeline, p.kind, p.file]),
    [['clip', 'state', file]],
  );
  assert.match(r.text, /merge state generation 2: .*sha256 [0-9a-f]{64}, recorded at commit/);

  const gone = damaged(() => rmSync(file), restore);
  assert.deepEqual(
    gone.out.problems.map((p) => p.message),
    [`merge state generation 2: ${file} is missing`],
  );
});

test('verify: a newer intact version on disk not yet recorded (daemon mid-publication) is a note, not a failure', async () => {
  const s = await beginVersion(f.repo, 'clip', 3);
  writeFileSync(join(s.dir, 'model.safetensors'), randomBytes(64));
  await finishVersion(s, {
    parent: 2,
    method: 'opcm',
    params: {},
    base: { path: '/b', sha256: sha('base') },
    checkpoints: [],
    engine: 'portable',
  });
  await swapCurrent(f.repo, 'clip', 3);
  try {
    const { status, out } = json(['verify', '--config', f.cfg, '--json']);
    assert.equal(status, 0, JSON.stringify(out.problems));
    assert.deepEqual(
      out.notes.map((n: { kind: string; version: number }) => [n.kind, n.version]),
      [
        ['unrecorded', 3],
        ['current', 3],
      ],
    );
  } finally {
    await swapCurrent(f.repo, 'clip', 2);
    rmSync(join(f.repo, 'clip', '3'), { recursive: true });
  }
});

test('inspection reads while another connection holds the write lock (the daemon mid-transaction)', () => {
  const writer = openStore(f.dbPath);
  writer.db.exec('BEGIN IMMEDIATE');
  try {
    writer.db.prepare("UPDATE pipelines SET merged_count = merged_count WHERE name = 'clip'").run();
    const t0 = performance.now();
    const st = json(['status', '--config', f.cfg, '--json']);
    assert.equal(st.status, 0);
    assert.equal(st.out.pipelines[0].current_version, 2);
    assert.equal(json(['verify', '--config', f.cfg, '--json']).status, 0);
    // busy_timeout is 10 s: a reader that waited for the lock would take that long
    assert.ok(performance.now() - t0 < 8000, 'readers did not wait for the writer');
  } finally {
    writer.db.exec('ROLLBACK');
    writer.close();
  }
});

test('errors are one line on stderr with a nonzero exit: missing config, bad config, no database', () => {
  const dir = tempDir('cmerge-inspect-err-');
  const cases: [string[], RegExp][] = [];
  cases.push([['--config', join(dir, 'nope.yaml')], /nope\.yaml: cannot read/]);
  writeFileSync(join(dir, 'bad.yaml'), 'state_dir: ./s\npipelines: []\n');
  cases.push([['--config', join(dir, 'bad.yaml')], /bad\.yaml: pipelines: /]);
  writeFileSync(join(dir, 'fresh.yaml'), CONFIG);
  writeFileSync(join(dir, 'base.safetensors'), '');
  cases.push([['--config', join(dir, 'fresh.yaml')], /cmerge\.sqlite: no database yet/]);
  for (const [args, re] of cases) {
    for (const cmd of [['status'], ['history'], ['show', 'clip', '1'], ['verify']]) {
      const r = cmerge([...cmd, ...args, '--json']);
      assert.notEqual(r.status, 0, `${cmd[0]} ${args.join(' ')}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^cmerge: [^\n]*\n$/, `${cmd[0]}: one line: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  }
});

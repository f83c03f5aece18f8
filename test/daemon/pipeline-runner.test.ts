import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import winston from 'winston';
import { loadConfig } from '../../src/config/index.js';
import { checkpointSha256 } from '../../src/daemon/checkpoint-hash.js';
import { Limiter } from '../../src/daemon/limiter.js';
import { PipelineRunner } from '../../src/daemon/pipeline.js';
import type { RunnerPhase, RunnerTimings } from '../../src/daemon/runner-types.js';
import { SseHubs } from '../../src/publish/index.js';
import { openStore, SHUTDOWN_REASON, type Store } from '../../src/store/index.js';
import { writeDemoModels } from '../../src/demo/synth.js';
import { generationDir } from '../../src/merge/state.js';
import { tempDir } from '../helpers/paths.js';
import { currentVersion, manifest, sleep, waitUntil, writeConfig } from './support.js';
import { ManualClock } from '../helpers/manual-clock.js';

/**
 * PipelineRunner in this process: a real SQLite store, real safetensors checkpoints, the real
 * merge worker and real version folders. The one fake is the clock: time moves only when the
 * test says, so a backoff is checked without waiting it out.
 */

interface Harness {
  runner: PipelineRunner;
  store: Store;
  clock: ManualClock;
  /** every phase entered, in order */
  phases: RunnerPhase[];
  /** every log message, in order */
  messages: string[];
  tasks: string[];
  drop: string;
  repo: string;
  /** copies task i into the drop folder and queues it, as the intake would */
  queue(i: number): Promise<void>;
}

/** A runner on a fresh store and repository, recovered as the daemon does before taking work; `modelDim`: the demo models' width. */
async function harness(
  prefix: string,
  timings: Partial<RunnerTimings> = {},
  modelDim = 16,
  clock = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z')),
): Promise<Harness> {
  const work = tempDir(prefix);
  const models = writeDemoModels(join(work, 'models'), 2, { d: modelDim, layers: 2, seed: 3 });
  const drop = join(work, 'drop');
  const repo = join(work, 'repo');
  mkdirSync(drop);
  const config = loadConfig(
    writeConfig(join(work, 'cmerge.yaml'), join(work, 'state'), [{ base: models.base, drop, repository: repo }]),
  );
  const cfg = config.pipelines[0];
  mkdirSync(config.state_dir, { recursive: true });
  const store = openStore(config.db_path);
  const messages: string[] = [];
  const log = winston.createLogger({
    format: winston.format.printf((info) => String(info.message)),
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer, _encoding, done) {
            messages.push(chunk.toString().trim());
            done();
          },
        }),
      }),
    ],
  });
  const phases: RunnerPhase[] = [];
  const runner = new PipelineRunner(cfg, {
    store,
    limiter: new Limiter(1),
    log,
    stateRoot: config.state_dir,
    sse: new SseHubs(),
    threads: 1,
    baseSha256: await checkpointSha256(models.base),
    metrics: null,
    onFatal: (e) => assert.fail(`unexpected engine failure: ${e.message}`),
    clock,
    timings,
    onPhase: (phase) => phases.push(phase),
  });
  await runner.recover();
  const queue = async (i: number) => {
    const path = join(drop, basename(models.tasks[i]));
    copyFileSync(models.tasks[i], path);
    store.enqueue(cfg.name, {
      name: basename(path),
      path,
      sha256: await checkpointSha256(path),
      size: statSync(path).size,
    });
    runner.kick();
  };
  return { runner, store, clock, phases, messages, tasks: models.tasks, drop, repo, queue };
}

const kinds = (phases: RunnerPhase[]) => phases.map((p) => p.kind);

/** the runner's phase now (a function: TypeScript would keep an earlier assertion's narrowing) */
const phaseNow = (h: Harness): RunnerPhase => h.runner.phase;

/** waits (real time: the merge runs in a real worker) until the runner has entered `count` phases */
const phasesEntered = (h: Harness, count: number, what: string) =>
  waitUntil(() => h.phases.length >= count, 60_000, `${what}; phases so far: ${kinds(h.phases).join(' → ')}`);

/** the entries of the pipeline's repository folder other than `current` */
const repositoryEntries = (h: Harness) =>
  existsSync(join(h.repo, 'clip'))
    ? readdirSync(join(h.repo, 'clip'))
        .filter((e) => e !== 'current')
        .sort()
    : [];

test('a queued checkpoint: idle → merging → idle, published as version 1', async () => {
  const h = await harness('cmerge-runner-flow-');
  try {
    assert.equal(phaseNow(h).kind, 'idle');
    await h.queue(0);
    await phasesEntered(h, 2, 'merged');
    assert.deepEqual(kinds(h.phases), ['merging', 'idle']);
    const merging = h.phases[0] as Extract<RunnerPhase, { kind: 'merging' }>;
    assert.equal(merging.failures, 0);
    assert.equal(merging.active.status.checkpoint, 'task_0.safetensors');
    assert.equal(merging.active.status.step, 1);
    assert.equal(merging.active.status.started_at, new Date(h.clock.now()).toISOString(), 'timestamps read the clock');
    assert.equal(h.runner.status, null, 'nothing in flight');
    assert.equal(currentVersion(h.repo, 'clip'), 1);
    assert.deepEqual(
      manifest(h.repo, 'clip', 1).checkpoints.map((c) => c.name),
      ['task_0.safetensors'],
    );
    const version = h.store.latestVersion('clip');
    assert.equal(version?.number, 1);
    assert.equal(h.store.merge(version!.merge_id)?.status, 'committed', 'merge and version committed together');
    assert.deepEqual(repositoryEntries(h), ['1']);
  } finally {
    await h.runner.stop(0);
    h.store.close();
  }
});

test('a failed merge is recovered at once, then retried after the configured backoff (doubling), not before', async () => {
  const h = await harness('cmerge-runner-backoff-', { backoff: { initialMs: 60_000, maxMs: 600_000 } });
  try {
    // a version folder no merge committed: beginVersion refuses to publish over it
    mkdirSync(join(h.repo, 'clip', '1'), { recursive: true });
    const t0 = h.clock.now();
    await h.queue(0);
    await phasesEntered(h, 3, 'the first attempt failed and was recovered');
    assert.deepEqual(kinds(h.phases), ['merging', 'recovering', 'backoff']);
    const first = phaseNow(h) as Extract<RunnerPhase, { kind: 'backoff' }>;
    assert.equal(first.kind, 'backoff');
    assert.equal(first.until, t0 + 60_000, 'the configured delay from the failure');
    assert.equal(first.failures, 1);
    assert.equal(first.recovered, true);
    assert.match(first.reason, /already exists/);
    assert.match(h.messages.join('\n'), /merge 1 \(task_0\.safetensors\) failed, retrying in 60 s: .*already exists/);
    // recovery: the attempt recorded as interrupted, the checkpoint at the head of the queue, the folder gone
    assert.deepEqual(
      h.store.merges('clip').map((m) => m.status),
      ['interrupted'],
    );
    assert.equal(h.store.nextQueued('clip')?.name, 'task_0.safetensors');
    // a version folder without a manifest was never a publication: recovery moves it aside, kept for inspection
    assert.deepEqual(
      repositoryEntries(h).map((e) => e.replace(/-\d+$/, '-*')),
      ['.broken-1-*'],
      'the obstacle moved aside by the recovery',
    );
    assert.deepEqual(h.clock.pending, [t0 + 60_000], 'one timer, at the end of the backoff');

    // real time passes, the clock does not: no retry
    await sleep(300);
    h.runner.kick();
    await sleep(100);
    assert.equal(phaseNow(h).kind, 'backoff');
    assert.equal(h.phases.length, 3);

    // the same obstacle again: the second failure backs off twice as long
    mkdirSync(join(h.repo, 'clip', '1'));
    h.clock.advance(59_999);
    assert.equal(h.phases.length, 3, 'not a millisecond early');
    h.clock.advance(1);
    await phasesEntered(h, 6, 'the second attempt failed');
    assert.deepEqual(kinds(h.phases).slice(3), ['merging', 'recovering', 'backoff']);
    const second = phaseNow(h) as Extract<RunnerPhase, { kind: 'backoff' }>;
    assert.equal(second.failures, 2);
    assert.equal(second.until, t0 + 60_000 + 120_000);
    assert.match(h.messages.join('\n'), /merge 1 \(task_0\.safetensors\) failed, retrying in 120 s/);

    // once the backoff is over, the retry publishes
    h.clock.advance(120_000);
    await phasesEntered(h, 8, 'the third attempt');
    assert.deepEqual(kinds(h.phases).slice(6), ['merging', 'idle']);
    assert.equal((h.phases[6] as Extract<RunnerPhase, { kind: 'merging' }>).failures, 2);
    assert.equal(currentVersion(h.repo, 'clip'), 1);
    assert.deepEqual(
      h.store.merges('clip').map((m) => m.status),
      ['interrupted', 'interrupted', 'committed'],
    );
    assert.deepEqual(h.clock.pending, [], 'no timer left');

    // a published merge resets the count: the next failure backs off the initial delay again
    mkdirSync(join(h.repo, 'clip', '2'));
    await h.queue(1);
    await phasesEntered(h, 11, 'the next checkpoint failed');
    const third = phaseNow(h) as Extract<RunnerPhase, { kind: 'backoff' }>;
    assert.equal(third.failures, 1);
    assert.equal(third.until, h.clock.now() + 60_000);
  } finally {
    await h.runner.stop(0);
    h.store.close();
  }
});

test("a backoff timer that fires a millisecond early (as Node's may) is set again: the retry still comes", async () => {
  const early = new ManualClock(Date.parse('2026-01-01T00:00:00.000Z'), 1);
  const h = await harness('cmerge-runner-early-', { backoff: { initialMs: 5_000, maxMs: 600_000 } }, 16, early);
  try {
    mkdirSync(join(h.repo, 'clip', '1'), { recursive: true });
    const t0 = h.clock.now();
    await h.queue(0);
    await phasesEntered(h, 3, 'the first attempt failed');
    assert.deepEqual(h.clock.pending, [t0 + 5_000]);
    h.clock.advance(5_000 - 1); // the timer fires with now() one millisecond short of the end
    await sleep(100);
    assert.equal(phaseNow(h).kind, 'backoff', 'not retried before the end');
    assert.deepEqual(h.clock.pending, [t0 + 5_000], 'the timer is set again for the end of the backoff');
    h.clock.advance(1);
    await phasesEntered(h, 5, 'the retry');
    assert.deepEqual(kinds(h.phases), ['merging', 'recovering', 'backoff', 'merging', 'idle']);
    assert.equal(currentVersion(h.repo, 'clip'), 1);
  } finally {
    await h.runner.stop(0);
    h.store.close();
  }
});

test('a recovery that fails too is tried again when the backoff ends, before the merge is retried', async () => {
  const h = await harness('cmerge-runner-recovery-', { backoff: { initialMs: 60_000, maxMs: 600_000 } });
  try {
    await h.queue(0);
    await phasesEntered(h, 2, 'version 1');
    assert.equal(currentVersion(h.repo, 'clip'), 1);
    // merge 2 fails (a folder in the way of version 2), and its recovery too (the committed state generation is away)
    mkdirSync(join(h.repo, 'clip', '2'));
    const generation = generationDir(h.runner.stateDir, 1);
    const away = join(dirname(h.repo), 'generation-away');
    renameSync(generation, away);
    await h.queue(1);
    await phasesEntered(h, 5, 'merge 2 failed');
    assert.deepEqual(kinds(h.phases).slice(2), ['merging', 'recovering', 'backoff']);
    const backoff = phaseNow(h) as Extract<RunnerPhase, { kind: 'backoff' }>;
    assert.equal(backoff.recovered, false);
    assert.equal(backoff.until, h.clock.now() + 60_000);
    assert.match(
      h.messages.join('\n'),
      /recording the failed merge failed \(tried again before the next merge\): .*state generation 1 is missing/,
    );

    renameSync(away, generation);
    h.clock.advance(60_000);
    await phasesEntered(h, 8, 'merge 2 retried');
    assert.deepEqual(kinds(h.phases).slice(5), ['recovering', 'merging', 'idle']);
    assert.equal(currentVersion(h.repo, 'clip'), 2);
    assert.deepEqual(
      manifest(h.repo, 'clip', 2).checkpoints.map((c) => c.name),
      ['task_0.safetensors', 'task_1.safetensors'],
    );
    assert.deepEqual(
      h.store.merges('clip').map((m) => m.status),
      ['committed', 'interrupted', 'committed'],
    );
  } finally {
    await h.runner.stop(0);
    h.store.close();
  }
});

test('stop while merging: stopping, the attempt given up, no partial version or state left', async () => {
  const h = await harness('cmerge-runner-stop-', {}, 96);
  try {
    await h.queue(0);
    await phasesEntered(h, 1, 'merging');
    assert.equal(phaseNow(h).kind, 'merging');
    const stopped = h.runner.stop(0);
    assert.equal(phaseNow(h).kind, 'stopping');
    assert.equal(h.runner.status?.step, 1, 'the merge still finishing is shown');
    h.clock.advance(0); // the shutdown budget is spent: abort
    await stopped;
    assert.deepEqual(kinds(h.phases), ['merging', 'stopping', 'stopping']);
    assert.deepEqual(phaseNow(h), { kind: 'stopping', active: null });
    assert.match(h.messages.join('\n'), /shutdown budget of 0 s used up/);
    assert.match(h.messages.join('\n'), /merge 1 \(task_0\.safetensors\) abandoned for shutdown/);
    assert.equal(currentVersion(h.repo, 'clip'), null);
    assert.deepEqual(repositoryEntries(h), [], 'no version folder, no staging folder');
    assert.deepEqual(
      h.store.merges('clip').map((m) => [m.status, m.error]),
      [['interrupted', SHUTDOWN_REASON]],
    );
    assert.equal(h.store.nextQueued('clip')?.name, 'task_0.safetensors', 'the checkpoint stays queued');
    assert.equal(h.store.currentStateGeneration('clip'), null);
    assert.deepEqual(h.clock.pending, [], 'the stop left no timer');

    h.runner.kick();
    await sleep(100);
    assert.equal(phaseNow(h).kind, 'stopping', 'a stopped runner takes no more work');
    assert.equal(h.phases.length, 3);
  } finally {
    h.store.close();
  }
});

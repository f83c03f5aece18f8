/** The in-process intake of the intake tests: a real drop folder, store and chokidar; time is the test's. */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { stringify } from 'yaml';
import { parseConfig, type PipelineConfig } from '../../src/config/index.js';
import { Intake, type IntakeTimings } from '../../src/daemon/intake/index.js';
import { openModel } from '../../src/io/model.js';
import type { ModelReader } from '../../src/io/types.js';
import { openStore, type Store } from '../../src/store/index.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { tempDir } from '../helpers/paths.js';

export interface LogRecord {
  level: string;
  message: string;
}

export const TICK = 100;
export const SETTLE = 1_000;

export interface Rig {
  work: string;
  drop: string;
  pipeline: PipelineConfig;
  dbPath: string;
  store: Store;
  base: ModelReader;
  clock: ManualClock;
  logs: LogRecord[];
  queued: number;
  rejected: number;
  intake: Intake;
  /** a new Intake on the same folder and store (a restart); the old one must be stopped first */
  restart(): Promise<void>;
  /** moves the clock by `ms`, tick by tick, letting each tick's intake work finish */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A drop folder for a pipeline on `base`, a real store and a started Intake on a manual clock.
 * The store does not wait for a busy writer: a locked database fails the intake at once.
 */
export async function intakeRig(prefix: string, base: string, timings: Partial<IntakeTimings> = {}): Promise<Rig> {
  const work = tempDir(prefix);
  const drop = join(work, 'drop');
  mkdirSync(drop);
  const yaml = stringify({
    state_dir: join(work, 'state'),
    pipelines: [
      {
        name: 'clip',
        method: 'opcm',
        params: { alpha: 0.5 },
        base,
        drop,
        repository: join(work, 'repo'),
        settle_ms: SETTLE,
      },
    ],
  });
  const config = parseConfig(yaml, join(work, 'cmerge.yaml'));
  const store = openStore(config.db_path, { busyTimeoutMs: 0 });
  const logs: LogRecord[] = [];
  const log = winston.createLogger({
    level: 'debug',
    transports: [
      new winston.transports.Stream({
        stream: new Writable({
          objectMode: true,
          write(info: LogRecord, _enc, done) {
            logs.push({ level: info.level, message: info.message });
            done();
          },
        }),
      }),
    ],
  });
  const r: Rig = {
    work,
    drop,
    pipeline: config.pipelines[0],
    dbPath: config.db_path,
    store,
    base: openModel(base),
    clock: new ManualClock(),
    logs,
    queued: 0,
    rejected: 0,
    intake: undefined as unknown as Intake,
    async restart() {
      r.intake = new Intake({
        pipeline: r.pipeline,
        store,
        base: r.base,
        log,
        clock: r.clock,
        tickMs: TICK,
        rescanMs: 1_000,
        incompleteTimeoutMs: 60_000,
        ...timings,
        onQueued: () => r.queued++,
        onRejected: () => r.rejected++,
      });
      await r.intake.start();
    },
    async elapse(ms) {
      const until = r.clock.now() + ms;
      while (r.clock.fireNext(until)) {
        await r.intake.drained();
        await new Promise<void>((resolve) => setImmediate(resolve)); // the log stream, file events
      }
    },
    async close() {
      await r.intake.stop();
      r.base.close();
      store.close();
    },
  };
  await r.restart();
  return r;
}

/** ticks one at a time until `cond` holds; returns the clock's time then */
export async function tickUntil(r: Rig, cond: () => boolean, limitMs: number, what: string): Promise<number> {
  const start = r.clock.now();
  while (!cond()) {
    if (r.clock.now() - start > limitMs) assert.fail(`not within ${limitMs} ms of clock time: ${what}`);
    await r.elapse(TICK);
  }
  return r.clock.now();
}

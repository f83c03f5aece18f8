import { join } from 'node:path';
import type { Logger } from 'winston';
import type { PipelineConfig } from '../config/index.js';
import { floatDtype } from '../io/types.js';
import { committedGeneration, generationDir } from '../merge/state.js';
import type { Store } from '../store/index.js';
import type { Clock } from './backoff.js';
import type { DaemonEvents } from './events.js';
import {
  describeShortfalls,
  diskBytes,
  estimateFromBase,
  shortfalls,
  type BaseEstimate,
  type RoomNeed,
} from './room.js';

export interface RoomPauseDeps {
  /** the pipeline's config now (a reload may change it) */
  cfg(): PipelineConfig;
  stateDir: string;
  store: Store;
  log: Logger;
  clock: Clock;
  events?: DaemonEvents;
  /** merging may go on: the runner looks at its queue again */
  kick(): void;
}

/**
 * Pauses a pipeline whose next merge would not fit on disk, and lifts that pause by itself once
 * room appears (docs/operations.md, "Room on disk"). The pause is the store's, kind `no_room`: it
 * shows in status and survives a restart; an operator's pause or resume replaces it.
 */
export class RoomPause {
  private cancelTimer: (() => void) | null = null;
  private baseEstimate: { key: string; value: BaseEstimate } | null = null;

  constructor(private readonly deps: RoomPauseDeps) {}

  private get name(): string {
    return this.deps.cfg().name;
  }

  /** Whether the next merge fits; when not, the pipeline is paused (logged once) and watched. */
  admits(): boolean {
    const cfg = this.deps.cfg();
    if (!cfg.room.check) return true;
    const short = shortfalls(this.needs(), cfg.room.reserve);
    if (short.length === 0) return true;
    const reason = describeShortfalls(short, cfg.room.reserve);
    const { store, log, events } = this.deps;
    if (store.pauseState(this.name)?.kind !== 'no_room') {
      log.warn(`merging paused: ${reason}; it resumes by itself once there is room`, { pipeline: this.name });
      events?.emit({ type: 'paused', pipeline: this.name, reason });
    }
    store.setPaused(this.name, reason, 'no_room');
    this.watch();
    return false;
  }

  /** After a restart: a pipeline paused for room is watched again. */
  resumeWatching(): void {
    if (this.deps.store.pauseState(this.name)?.kind === 'no_room') this.watch(0);
  }

  stop(): void {
    this.cancelTimer?.();
    this.cancelTimer = null;
  }

  private watch(delayMs = this.deps.cfg().room.recheck_s * 1000): void {
    this.stop();
    this.cancelTimer = this.deps.clock.setTimer(() => this.recheck(), delayMs, { weak: true });
  }

  private recheck(): void {
    this.cancelTimer = null;
    const { store, log, events } = this.deps;
    // an operator's pause, or a resume, took over: nothing to watch
    if (store.pauseState(this.name)?.kind !== 'no_room') return;
    const cfg = this.deps.cfg();
    let short;
    try {
      short = cfg.room.check ? shortfalls(this.needs(), cfg.room.reserve) : [];
    } catch (e) {
      log.error(`checking the room on disk failed: ${(e as Error).message}`, { pipeline: this.name });
      return this.watch();
    }
    if (short.length > 0) {
      // the figures moved (another writer, a deleted file): the status says what they are now
      store.setPaused(this.name, describeShortfalls(short, cfg.room.reserve), 'no_room');
      return this.watch();
    }
    store.setPaused(this.name, null);
    log.info('there is room on disk again: merging resumes', { pipeline: this.name });
    events?.emit({ type: 'resumed', pipeline: this.name });
    this.deps.kick();
  }

  /**
   * The next state generation and version: as large as the committed one and the newest published
   * one, and at least what the base model implies (the first merge has nothing else to go by).
   */
  private needs(): RoomNeed[] {
    const cfg = this.deps.cfg();
    const base = this.fromBase(cfg);
    const committed = committedGeneration(this.deps.stateDir);
    const lastState = committed ? diskBytes(generationDir(this.deps.stateDir, committed)) : 0;
    const latest = this.deps.store.latestVersion(cfg.name);
    const lastVersion = latest && latest.removed_at === null ? diskBytes(latest.path) : 0;
    return [
      { what: 'the state generation', dir: this.deps.stateDir, bytes: Math.max(lastState, base.stateBytes) },
      {
        what: 'the version',
        dir: join(cfg.repository, cfg.name),
        bytes: Math.max(lastVersion, base.versionBytes),
      },
    ];
  }

  /** The base's estimate, read once per base and output dtype. */
  private fromBase(cfg: PipelineConfig): BaseEstimate {
    const key = `${cfg.base}\0${cfg.out_dtype ?? ''}`;
    if (this.baseEstimate?.key !== key) {
      const out = cfg.out_dtype ? (floatDtype(cfg.out_dtype) ?? undefined) : undefined;
      this.baseEstimate = { key, value: estimateFromBase(cfg.base, out) };
    }
    return this.baseEstimate.value;
  }
}

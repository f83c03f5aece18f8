import type { Config, EngineConfig } from '../config/index.js';
import { createEngine, EngineUnavailableError, type EngineAnnounce, type EngineOptions } from '../engine/index.js';
import { log } from '../util/log.js';

/** createEngine's options for a pipeline's `engine` (threads: the config's global `threads`). */
export function engineOptions(e: EngineConfig, threads?: number): EngineOptions {
  return { threads, cuda: { device: e.device, maxMemoryBytes: e.max_memory, tf32: e.tf32 } };
}

/**
 * The engine lines the daemon logs. Every merge's worker creates its engine anew, and start-up and
 * every reload create each configured one: a line is logged when it is not one of the current
 * ones, so once at start, and again only when the engine changes (a reload to another engine, a
 * cuda merge falling back to the CPU). Each merge's engine is recorded in SQLite regardless.
 */
export class EngineLines {
  private current = new Set<string>();

  /** a merge worker's line */
  readonly announce: EngineAnnounce = (line, level) => {
    if (this.current.has(line)) return;
    this.current.add(line);
    log.log(level, line);
  };

  /** the lines of a config just checked replace the current ones; the new ones are logged */
  replace(lines: readonly { line: string; level: 'info' | 'warn' }[]): void {
    for (const { line, level } of lines) if (!this.current.has(line)) log.log(level, line);
    this.current = new Set(lines.map((l) => l.line));
  }
}

/**
 * Every pipeline's engine can run here: an engine named in the config (`cuda`, `native`) that
 * cannot would fail every merge, so start-up and reload refuse the config instead, with the
 * engine's one line. Creating each engine once also says which one `auto` picked (GPU, driver):
 * `lines` logs what changed, only once the whole config passed.
 */
export function checkEngines(config: Config, lines: EngineLines): void {
  const seen = new Set<string>();
  const announced: { line: string; level: 'info' | 'warn' }[] = [];
  for (const p of config.pipelines) {
    const key = JSON.stringify(p.engine);
    if (seen.has(key)) continue;
    seen.add(key);
    const opts = {
      ...engineOptions(p.engine, config.threads),
      announce: ((line, level) => void announced.push({ line, level })) satisfies EngineAnnounce,
    };
    try {
      createEngine(p.engine.name, opts).close();
    } catch (e) {
      if (e instanceof EngineUnavailableError) throw new EngineUnavailableError(`pipeline ${p.name}: ${e.message}`);
      throw e;
    }
  }
  lines.replace(announced);
}

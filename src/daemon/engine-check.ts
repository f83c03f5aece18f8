import type { Config, EngineConfig } from '../config/index.js';
import { createEngine, EngineUnavailableError, type EngineOptions } from '../engine/index.js';

/** createEngine's options for a pipeline's `engine` (threads: the config's global `threads`). */
export function engineOptions(e: EngineConfig, threads?: number): EngineOptions {
  return { threads, cuda: { device: e.device, maxMemoryBytes: e.max_memory, tf32: e.tf32 } };
}

/**
 * Every pipeline's engine can run here: an engine named in the config (`cuda`, `native`) that
 * cannot would fail every merge, so start-up and reload refuse the config instead, with the
 * engine's one line. Creating each engine once also logs which one `auto` picked (GPU, driver).
 */
export function checkEngines(config: Config): void {
  const seen = new Set<string>();
  for (const p of config.pipelines) {
    const key = JSON.stringify(p.engine);
    if (seen.has(key)) continue;
    seen.add(key);
    try {
      createEngine(p.engine.name, engineOptions(p.engine, config.threads)).close();
    } catch (e) {
      if (e instanceof EngineUnavailableError) throw new EngineUnavailableError(`pipeline ${p.name}: ${e.message}`);
      throw e;
    }
  }
}

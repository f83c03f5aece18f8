import { commandAttempt } from './command.js';
import { httpAttempt, type AttemptResult } from './http.js';
import { DEFAULT_BACKOFF_S, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, backoffMs, sleep } from './retry.js';
import type { SseHubs } from './sse-hub.js';
import type {
  CommandNotifierConfig,
  HttpNotifierConfig,
  NotifierConfig,
  NotifierOutcome,
  NotifyContext,
} from './types.js';
import { verifyServing, type VerifyMismatch } from './verify.js';

export interface RunNotifiersOptions {
  /** required for `type: sse` notifiers: the daemon's long-lived hubs */
  sse?: SseHubs;
  /** shutdown: stops waiting, kills running commands, aborts requests, skips retries */
  signal?: AbortSignal;
  /** called after each attempt (and each serving-check mismatch), e.g. to record it in SQLite as it happens */
  onOutcome?: (outcome: NotifierOutcome) => void;
}

/**
 * Run a pipeline's notifiers for one published version, one after the other in config order
 * (a later notifier may rely on an earlier one, e.g. a command after a reload request).
 * Each retries on its own; a failure is recorded and the next notifier still runs.
 * A notifier with `verify` counts as ok only once its serving check matched; each mismatch is an
 * outcome of its own (same attempt number) and a check that never matches fails the attempt, so
 * the retry sends the request(s) again. Never rejects. Returns the outcomes in order.
 */
export async function runNotifiers(
  configs: readonly NotifierConfig[],
  ctx: NotifyContext,
  opts: RunNotifiersOptions = {},
): Promise<NotifierOutcome[]> {
  const out: NotifierOutcome[] = [];
  const record = (outcome: NotifierOutcome) => {
    out.push(outcome);
    try {
      opts.onOutcome?.(outcome);
    } catch {
      /* a recording failure must not stop the notifications */
    }
  };
  for (const [i, cfg] of configs.entries()) {
    const name = cfg.name ?? `${cfg.type}#${i + 1}`;
    try {
      await runOne(cfg, name, ctx, opts, record);
    } catch (err) {
      record({
        notifier: name,
        type: cfg.type,
        attempt: 1,
        ok: false,
        detail: `internal error: ${(err as Error).message}`,
        durationMs: 0,
      });
    }
  }
  return out;
}

async function runOne(
  cfg: NotifierConfig,
  name: string,
  ctx: NotifyContext,
  opts: RunNotifiersOptions,
  record: (outcome: NotifierOutcome) => void,
): Promise<void> {
  if (cfg.type === 'sse') {
    const t0 = performance.now();
    if (!opts.sse) {
      record({
        notifier: name,
        type: 'sse',
        attempt: 1,
        ok: false,
        detail: 'no SSE hub registry was given to runNotifiers',
        durationMs: 0,
      });
      return;
    }
    const hub = await opts.sse.get(cfg.port, cfg.host);
    const clients = hub.broadcast({ pipeline: ctx.pipeline, version: ctx.version, path: ctx.path });
    record({
      notifier: name,
      type: 'sse',
      attempt: 1,
      ok: true,
      detail: `sent to ${clients} client(s) on ${hub.host}:${hub.port}`,
      durationMs: performance.now() - t0,
    });
    return;
  }
  const timeoutMs = (cfg.timeout_s ?? DEFAULT_TIMEOUT_S) * 1000;
  const retries = cfg.retries ?? DEFAULT_RETRIES;
  const backoffS = cfg.backoff_s ?? DEFAULT_BACKOFF_S;
  for (let attempt = 1; attempt <= retries + 1; attempt++) {
    if (attempt > 1 && !(await sleep(backoffMs(backoffS, attempt - 1), opts.signal))) return;
    if (opts.signal?.aborted) return;
    const t0 = performance.now();
    const base = { notifier: name, type: cfg.type, attempt };
    const result = await attemptOnce(cfg, ctx, timeoutMs, opts.signal, (m) => record({ ...base, ...m }));
    record({ ...base, ...result, durationMs: Math.round(performance.now() - t0) });
    if (result.ok) return;
  }
}

/** One attempt: the request(s) or the command, then the serving check when there is one. */
async function attemptOnce(
  cfg: HttpNotifierConfig | CommandNotifierConfig,
  ctx: NotifyContext,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  onMismatch: (m: VerifyMismatch) => void,
): Promise<AttemptResult> {
  const result =
    cfg.type === 'http'
      ? await httpAttempt(cfg, ctx, timeoutMs, signal)
      : await commandAttempt(cfg, ctx, timeoutMs, signal);
  if (!result.ok || !cfg.verify) return result;
  const check = await verifyServing(cfg.verify, ctx, { signal, onMismatch });
  // status: of the last request made, the verify request
  return { ...result, ok: check.ok, status: check.status, detail: `${result.detail}; ${check.detail}` };
}

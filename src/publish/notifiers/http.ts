import { renderDeep, renderTemplate, renderUrl } from './template.js';
import { Tail } from './retry.js';
import type { HttpNotifierConfig, HttpStep, NotifyContext } from './types.js';

export interface AttemptResult {
  ok: boolean;
  status?: number;
  exitCode?: number | null;
  detail: string;
}

/** The request list of an HTTP notifier: `steps`, or the single request given at top level. */
export function httpSteps(cfg: HttpNotifierConfig): HttpStep[] {
  if (cfg.steps?.length) return cfg.steps;
  if (!cfg.url) throw new Error('http notifier needs `url` or `steps`');
  return [{ method: cfg.method, url: cfg.url, headers: cfg.headers, body: cfg.body }];
}

/**
 * One attempt: every step in order, each with its own timeout, stopping at the first non-2xx.
 * Never throws. Header values are kept out of `detail`: they often carry tokens.
 */
export async function httpAttempt(
  cfg: HttpNotifierConfig,
  ctx: NotifyContext,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AttemptResult> {
  let steps: HttpStep[];
  try {
    steps = httpSteps(cfg);
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
  const done: string[] = [];
  let status: number | undefined;
  for (const [i, step] of steps.entries()) {
    const { method, url, init } = requestInit(step, ctx, 'POST');
    const label = `${steps.length > 1 ? `step ${i + 1}/${steps.length} ` : ''}${method} ${url}`;
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const res = await fetch(url, { ...init, signal: signal ? AbortSignal.any([timeout, signal]) : timeout });
      status = res.status;
      const text = await readTail(res, 500);
      if (res.status < 200 || res.status > 299) {
        return { ok: false, status, detail: [...done, `${label} -> ${res.status} ${text}`.trim()].join('; ') };
      }
      done.push(`${label} -> ${res.status}`);
    } catch (err) {
      const why = failureReason(err, timeout, timeoutMs, signal);
      return { ok: false, status, detail: [...done, `${label}: ${why}`].join('; ') };
    }
  }
  return { ok: true, status, detail: done.join('; ') };
}

/** A step's templated request: method (upper case), URL and fetch options without the signal. */
export function requestInit(
  step: HttpStep,
  ctx: NotifyContext,
  defaultMethod: string,
): { method: string; url: string; init: RequestInit } {
  const method = (step.method ?? defaultMethod).toUpperCase();
  const url = renderUrl(step.url, ctx);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(step.headers ?? {})) headers[k] = renderTemplate(v, ctx);
  let body: string | undefined;
  if (typeof step.body === 'string') {
    body = renderTemplate(step.body, ctx);
  } else if (step.body !== undefined) {
    body = JSON.stringify(renderDeep(step.body, ctx));
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type'))
      headers['content-type'] = 'application/json';
  }
  return { method, url, init: { method, headers, body, redirect: 'follow' } };
}

/** Why a fetch threw, in words: its own timeout, shutdown, or the network error and its code. */
export function failureReason(err: unknown, timeout: AbortSignal, timeoutMs: number, signal?: AbortSignal): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return timeout.aborted
    ? `timed out after ${timeoutMs / 1000} s`
    : signal?.aborted
      ? 'aborted (shutdown)'
      : `${e.message}${e.cause ? ` (${e.cause.code ?? e.cause.message})` : ''}`;
}

/** Read a response body keeping only its tail, so a huge error page cannot fill memory. */
async function readTail(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const tail = new Tail(max);
  const decoder = new TextDecoder();
  for await (const chunk of res.body) tail.push(decoder.decode(chunk as Uint8Array, { stream: true }));
  return tail.toString().replace(/\s+/g, ' ').trim();
}

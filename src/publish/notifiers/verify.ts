import { failureReason, requestInit, type AttemptResult } from './http.js';
import { sleep } from './retry.js';
import { renderTemplate } from './template.js';
import type { NotifyContext, VerifyConfig, VerifyExpect } from './types.js';

/** Defaults of a notifier's `verify` (the config schema fills the same ones). */
export const DEFAULT_VERIFY_TIMEOUT_S = 10;
export const DEFAULT_VERIFY_INTERVAL_S = 2;
export const DEFAULT_VERIFY_ATTEMPTS = 10;
/** A verify response is read whole (it may be JSON); a larger one counts as a mismatch. */
const MAX_BODY_BYTES = 1 << 20;
/** Values and bodies quoted in a detail are cut to this many characters. */
const MAX_SHOWN = 200;

/** One verify request that did not match, for the notifier's onOutcome. */
export interface VerifyMismatch {
  ok: false;
  status?: number;
  detail: string;
  durationMs: number;
}

/**
 * The serving check after a notifier's request(s) or command succeeded: up to `attempts` verify
 * requests, `interval_s` apart (the first at once), until one matches `expect`. Every mismatch but
 * the last goes to `onMismatch`; the last check (or the shutdown) is the returned result. Never throws.
 */
export async function verifyServing(
  v: VerifyConfig,
  ctx: NotifyContext,
  opts: { signal?: AbortSignal; onMismatch?: (m: VerifyMismatch) => void } = {},
): Promise<AttemptResult> {
  const attempts = Math.max(1, v.attempts ?? DEFAULT_VERIFY_ATTEMPTS);
  const intervalMs = (v.interval_s ?? DEFAULT_VERIFY_INTERVAL_S) * 1000;
  for (let k = 1; ; k++) {
    const t0 = performance.now();
    const check = await verifyOnce(v, ctx, opts.signal);
    const detail = `${check.detail} (check ${k}/${attempts})`;
    if (check.matched || k >= attempts || opts.signal?.aborted) {
      return { ok: check.matched, status: check.status, detail };
    }
    opts.onMismatch?.({ ok: false, status: check.status, detail, durationMs: Math.round(performance.now() - t0) });
    if (!(await sleep(intervalMs, opts.signal))) {
      return { ok: false, status: check.status, detail: `${check.label}: aborted (shutdown) after ${k} check(s)` };
    }
  }
}

interface Check {
  matched: boolean;
  status?: number;
  /** `verify <METHOD> <url>`; header values are never shown (they may carry tokens) */
  label: string;
  detail: string;
}

/** One verify request and its verdict. A non-2xx status or a network error is a mismatch. */
async function verifyOnce(v: VerifyConfig, ctx: NotifyContext, signal?: AbortSignal): Promise<Check> {
  const { method, url, init } = requestInit(v, ctx, 'GET');
  const label = `verify ${method} ${url}`;
  const timeoutMs = (v.timeout_s ?? DEFAULT_VERIFY_TIMEOUT_S) * 1000;
  const timeout = AbortSignal.timeout(timeoutMs);
  let status: number | undefined;
  let text: string;
  try {
    const res = await fetch(url, { ...init, signal: signal ? AbortSignal.any([timeout, signal]) : timeout });
    status = res.status;
    text = await readCapped(res, MAX_BODY_BYTES);
  } catch (err) {
    return { matched: false, status, label, detail: `${label}: ${failureReason(err, timeout, timeoutMs, signal)}` };
  }
  if (status < 200 || status > 299) {
    return { matched: false, status, label, detail: `${label} -> ${status} ${shorten(oneLine(text))}`.trim() };
  }
  const verdict = judge(v.expect, text, ctx);
  return { ...verdict, status, label, detail: `${label}${verdict.matched ? ` -> ${status}` : ''}: ${verdict.detail}` };
}

/** Compare the response (or the value at `json_path`) with `equals` or `regex`. */
function judge(expect: VerifyExpect, text: string, ctx: NotifyContext): { matched: boolean; detail: string } {
  const found = pick(text, expect.json_path);
  if ('problem' in found) return { matched: false, detail: found.problem };
  const shown = `${expect.json_path ?? 'response'} is ${quote(found.value)}`;
  if (expect.regex !== undefined) {
    let re: RegExp;
    try {
      re = new RegExp(renderTemplate(expect.regex, ctx, escapeRegExp));
    } catch (err) {
      return { matched: false, detail: `invalid expect.regex: ${(err as Error).message}` };
    }
    return re.test(found.value)
      ? { matched: true, detail: shown }
      : { matched: false, detail: `${shown}, expected to match /${re.source}/` };
  }
  if (expect.equals === undefined) return { matched: false, detail: 'verify.expect needs equals or regex' };
  const want = renderTemplate(expect.equals, ctx);
  return found.value === want
    ? { matched: true, detail: shown }
    : { matched: false, detail: `${shown}, expected ${quote(want)}` };
}

/**
 * The compared text: the trimmed body, or the value at a dotted path into the JSON body (numeric
 * segments index arrays). A string value is taken as is, any other value as its JSON.
 */
function pick(text: string, path?: string): { value: string } | { problem: string } {
  if (path === undefined) return { value: text.trim() };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { problem: `response is not JSON: ${quote(oneLine(text))}` };
  }
  for (const key of path.split('.')) {
    if (Array.isArray(v) && /^\d+$/.test(key)) v = v[Number(key)];
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.hasOwn(v, key))
      v = (v as Record<string, unknown>)[key];
    else v = undefined;
    if (v === undefined) return { problem: `${path} is missing in ${quote(oneLine(text))}` };
  }
  return { value: typeof v === 'string' ? v : JSON.stringify(v) };
}

/** The whole body, as text; a body over `max` bytes is an error (the stream is cancelled). */
async function readCapped(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Uint8Array).byteLength;
    if (size > max) throw new Error(`response larger than ${max} bytes`);
    chunks.push(chunk as Uint8Array);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function shorten(s: string): string {
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…` : s;
}

function quote(s: string): string {
  return JSON.stringify(shorten(s));
}

/**
 * Shared by the API tests (not a test file itself): a daemon with the API on, HTTP calls with
 * fetch, and a server-sent events reader that collects a stream's events and comments as they
 * arrive.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { DaemonProc, workspace, writeConfig } from './support.js';

export interface Reply {
  status: number;
  headers: Headers;
  json: unknown;
  text: string;
}

export interface CallOptions {
  token?: string;
  /** sent as JSON; a string is sent as it is, with content-type application/json */
  body?: unknown;
  headers?: Record<string, string>;
}

/** One request to `base + path`; the reply's body parsed as JSON when it is JSON. */
export async function call(base: string, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let json: unknown = null;
  if ((res.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(text);
  return { status: res.status, headers: res.headers, json, text };
}

/** GET with a Host header of our choosing (fetch does not let a caller set Host). */
export function getWithHost(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface SseMessage {
  event: string;
  id: string;
  data: Record<string, unknown>;
}

/** An open `GET /v1/events`: its messages and comment lines, in order of arrival. */
export class EventReader {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  status = 0;
  contentType = '';
  /** resolves when the server ends the stream */
  ended!: Promise<void>;
  private readonly abort = new AbortController();
  private buffer = '';
  private waiters: (() => void)[] = [];

  static async open(url: string, headers: Record<string, string> = {}): Promise<EventReader> {
    const r = new EventReader();
    const res = await fetch(url, { headers, signal: r.abort.signal });
    r.status = res.status;
    r.contentType = res.headers.get('content-type') ?? '';
    r.ended = res.body ? r.pump(res.body) : Promise.resolve();
    // the opening comment: the server has subscribed this stream
    if (res.ok) await r.waitFor(() => r.comments.length > 0, 5_000, 'the opening comment');
    return r;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) {
        this.buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = this.buffer.indexOf('\n\n')) >= 0) {
          this.parse(this.buffer.slice(0, end));
          this.buffer = this.buffer.slice(end + 2);
        }
        this.poke();
      }
    } catch {
      // aborted by close()
    }
    this.poke();
  }

  private parse(block: string): void {
    const m: Partial<SseMessage> = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('event: ')) m.event = line.slice(7);
      else if (line.startsWith('id: ')) m.id = line.slice(4);
      else if (line.startsWith('data: ')) m.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
    }
    if (m.event) this.messages.push(m as SseMessage);
  }

  private poke(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** the first message of that type (and pipeline, if given) */
  async next(type: string, timeoutMs = 30_000, pipeline?: string): Promise<SseMessage> {
    const hit = () => this.messages.find((m) => m.event === type && (!pipeline || m.data.pipeline === pipeline));
    await this.waitFor(() => hit() !== undefined, timeoutMs, `"${type}" event`);
    return hit()!;
  }

  close(): void {
    this.abort.abort();
  }
}

/** A daemon with `api: {port: 0}`, its base URL (the port it logged) and its token. */
export async function startWithApi(prefix: string, tasks = 3) {
  const ws = workspace(prefix, tasks);
  const config = writeConfig(join(ws.work, 'cmerge.yaml'), ws.state, [{ ...ws.pipeline, retention: { keep: 50 } }], {
    api: { port: 0 },
  });
  const d = new DaemonProc(config);
  await d.ready();
  const line = await d.waitFor(/^api on http:\/\/127\.0\.0\.1:\d+ /);
  const port = Number(/:(\d+) /.exec(line.message)![1]);
  const token = readFileSync(join(ws.state, 'api-token'), 'utf8').trim();
  return { ...ws, config, d, base: `http://127.0.0.1:${port}`, token };
}

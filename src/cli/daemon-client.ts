import { request } from 'node:http';
import { socketPathOf } from '../daemon/api/socket.js';

/**
 * The CLI's way to a running daemon: HTTP over the unix socket `<state_dir>/cmerge.sock` (mode
 * 0600: being able to connect is the authentication, no token). Operator commands (rollback,
 * revert, pin, pause, resume) go through it, so that the daemon, which holds the state lock,
 * makes the change; when no daemon answers, the CLI takes the lock and makes it itself.
 */

/** The daemon answered with an error status: its `{"error"}` message and the status. */
export class DaemonError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'DaemonError';
  }
}

/** Nothing listens on the socket (no daemon, or one that crashed and left the file). */
export class DaemonNotRunning extends Error {
  constructor(readonly socketPath: string) {
    super(`no cmerge daemon is listening on ${socketPath}`);
    this.name = 'DaemonNotRunning';
  }
}

const NOT_LISTENING = new Set(['ENOENT', 'ECONNREFUSED']);

/**
 * One request to the daemon of `stateDir`; resolves with the JSON it answered (2xx). Rejects with
 * DaemonError (4xx/5xx), DaemonNotRunning, or the socket's own error. No timeout: a revert
 * replays merges and may take minutes.
 */
export function callDaemon(
  stateDir: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const socketPath = socketPathOf(stateDir);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = { accept: 'application/json' };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    // agent: false, a connection per call: a kept-alive one may be a stopped daemon's (EPIPE)
    const req = request({ socketPath, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => settle(Buffer.concat(chunks).toString('utf8'), res.statusCode ?? 0, resolve, reject));
    });
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code && NOT_LISTENING.has(e.code) ? new DaemonNotRunning(socketPath) : e),
    );
    req.end(payload);
  });
}

/** 2xx: the JSON (the text when it is not JSON); otherwise a DaemonError with the daemon's message. */
function settle(text: string, status: number, resolve: (v: unknown) => void, reject: (e: Error) => void): void {
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  if (status >= 200 && status < 300) return resolve(json);
  const message = (json as { error?: unknown } | null)?.error;
  reject(new DaemonError(typeof message === 'string' ? message : `HTTP ${status}: ${text.slice(0, 200)}`, status));
}

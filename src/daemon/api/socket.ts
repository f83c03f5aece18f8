import { chmodSync, mkdtempSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'winston';

/**
 * The daemon's unix socket, `<state_dir>/cmerge.sock`: how the CLI's operator commands reach a
 * running daemon. Its file mode (0600, the daemon's user) is the whole authentication.
 */
export const SOCKET_FILE_NAME = 'cmerge.sock';

/** sun_path holds 108 bytes with the terminating NUL */
const MAX_SOCKET_PATH = 107;

export const socketPathOf = (stateDir: string): string => join(stateDir, SOCKET_FILE_NAME);

/** A listening socket file, by inode, so that close never removes a successor's socket. */
export interface BoundSocket {
  path: string;
  ino: number;
}

/**
 * Listen on `<stateDir>/cmerge.sock`. The socket is bound inside a fresh 0700 folder, made 0600,
 * then renamed into place: it is never reachable with looser permissions, and the rename replaces
 * a stale socket left by a crash atomically. A socket that still answers belongs to a live daemon:
 * that is an error, not something to take over. Null (with a warning) when the path is too long
 * for a socket address.
 */
export async function listenSocket(app: FastifyInstance, stateDir: string, log: Logger): Promise<BoundSocket | null> {
  const path = socketPathOf(stateDir);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    log.warn(
      `no unix socket: ${path} is longer than the ${MAX_SOCKET_PATH} bytes a socket address holds; operator commands need the HTTP API (api: in the config) while the daemon runs`,
    );
    return null;
  }
  if (await answers(path)) throw new Error(`${path}: another cmerge daemon is listening on this state_dir`);
  // same length as the final name, so a path that fits fits here too
  const dir = mkdtempSync(join(stateDir, '.s-'));
  const tmp = join(dir, 's');
  try {
    await app.listen({ path: tmp });
    chmodSync(tmp, 0o600);
    renameSync(tmp, path);
  } catch (e) {
    await app.close();
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { path, ino: statSync(path).ino };
}

/** Remove the socket file if it is still the one this daemon bound. */
export function removeSocket(bound: BoundSocket): void {
  try {
    if (statSync(bound.path).ino === bound.ino) unlinkSync(bound.path);
  } catch {
    // already gone
  }
}

/** Whether something accepts connections on the socket path (ENOENT, ECONNREFUSED: no). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

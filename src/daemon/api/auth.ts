import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'winston';

/**
 * Who may call the API. Over the unix socket, its 0600 mode is the authentication. Over TCP bound
 * to loopback, reads are open to local processes and mutations need the bearer token; bound
 * elsewhere, every route needs it.
 */
export type Access = { via: 'socket' } | { via: 'tcp'; loopback: boolean; tokenDigest: Buffer };

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);
const SAFE_METHODS = new Set(['GET', 'HEAD']);

export const isLoopback = (host: string): boolean => LOOPBACK_HOSTS.has(host);

/** sha256 of the token: equal-length buffers for timingSafeEqual, whatever the lengths given */
export const tokenDigest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/**
 * The API token: read from `file`, or, when there is none, 32 random bytes (hex) written to a new
 * file created 0600 with O_EXCL (two daemons racing never both write one). An existing file that
 * group or others may read is used, with a warning; an empty one is an error.
 */
export function loadToken(file: string, log: Logger): string {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return readToken(file, log);
  }
  const token = randomBytes(32).toString('hex');
  try {
    writeSync(fd, `${token}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  log.info(`api token created in ${file}`);
  return token;
}

function readToken(file: string, log: Logger): string {
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077)
    log.warn(`api token file ${file} has mode 0${mode.toString(8)}: others may read it (chmod 600 ${file})`);
  const token = readFileSync(file, 'utf8').trim();
  if (!token) throw new Error(`api token file ${file} is empty: write a token into it, or delete it to have one made`);
  return token;
}

/** Why the request's Authorization header does not carry the token, or null when it does. */
export function tokenProblem(header: string | undefined, expected: Buffer): string | null {
  if (!header) return 'missing Authorization: Bearer <token>';
  const m = /^Bearer +(\S+) *$/i.exec(header);
  if (!m) return 'malformed Authorization header (expected: Bearer <token>)';
  return timingSafeEqual(tokenDigest(m[1]!), expected) ? null : 'wrong token';
}

/**
 * The onRequest hook of one listener: runs before the body is read, so a refused request changes
 * nothing. Bound to loopback, a Host header other than a loopback name is refused (403): a web
 * page must not read the open GET routes through DNS rebinding.
 */
export function authHook(access: Access) {
  // returning the reply ends the request there (fastify's early response from an async hook)
  return async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (access.via === 'socket') return;
    if (access.loopback && !isLoopback(hostName(req.headers.host)))
      return reply.code(403).send({ error: `host ${JSON.stringify(req.headers.host ?? '')} not allowed` });
    if (access.loopback && SAFE_METHODS.has(req.method)) return;
    const problem = tokenProblem(req.headers.authorization, access.tokenDigest);
    if (problem) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: problem });
  };
}

/** "127.0.0.1:8080" → 127.0.0.1, "[::1]:8080" → ::1 */
function hostName(host: string | undefined): string {
  if (!host) return '';
  const v6 = /^\[([^\]]+)\]/.exec(host);
  return v6 ? v6[1]! : host.replace(/:\d+$/, '');
}

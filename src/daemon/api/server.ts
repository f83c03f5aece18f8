import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'winston';
import type { ApiConfig } from '../../config/index.js';
import type { Store } from '../../store/index.js';
import type { DaemonEvents } from '../events.js';
import type { Operations } from '../operations/types.js';
import { authHook, isLoopback, loadToken, tokenDigest, type Access } from './auth.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { registerMutations, registerReads, type RouteContext } from './routes.js';
import { registerEvents } from './sse.js';
import { listenSocket, removeSocket, type BoundSocket } from './socket.js';
import { pipelineNames } from '../../store/views.js';

/**
 * The daemon's HTTP API (README "HTTP API"): on TCP when the config has `api:`, and always on the
 * unix socket `<state_dir>/cmerge.sock`, through which the CLI's operator commands reach a running
 * daemon. One fastify instance per listener, because each has its own authentication.
 */
export interface ApiDeps {
  store: Store;
  operations: Operations;
  events: DaemonEvents;
  log: Logger;
  stateDir: string;
  /** configured pipeline names (a reload may change them) */
  pipelines: () => readonly string[];
  api?: ApiConfig;
  /** SSE heartbeat interval (default 15 s) */
  heartbeatMs?: number;
}

export interface ApiHandle {
  /** the TCP port listened on (the real one when the config says 0), null without `api:` */
  port: number | null;
  /** null when state_dir's path is too long for a socket address */
  socketPath: string | null;
  /** ends the event streams, waits for the requests in flight, removes the socket file */
  close(): Promise<void>;
}

const DEFAULT_HEARTBEAT_MS = 15_000;

/** One listener's fastify instance: routes, schemas, errors, and the access rule of the listener. */
export function buildApp(deps: ApiDeps, access: Access): FastifyInstance {
  const app = Fastify({
    logger: false,
    return503OnClosing: true,
    // closed schemas are refused, not trimmed; types are not coerced ("3" is no version number)
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  app.setErrorHandler(errorHandler(deps.log));
  app.setNotFoundHandler(notFoundHandler);
  app.addHook('onRequest', authHook(access));
  const ctx: RouteContext = {
    store: deps.store,
    operations: deps.operations,
    configured: deps.pipelines,
    log: deps.log,
  };
  registerReads(app, ctx);
  registerMutations(app, ctx);
  const endStreams = registerEvents(app, {
    events: deps.events,
    known: (p) => pipelineNames(deps.store, deps.pipelines()).includes(p),
    heartbeatMs: deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
  });
  // open event streams would keep close() waiting forever
  app.addHook('preClose', async () => endStreams());
  return app;
}

/** Listen on the unix socket and, when configured, on TCP. */
export async function startApi(deps: ApiDeps): Promise<ApiHandle> {
  // before anything listens: a bad token file is a start-up error with nothing to undo
  const token = deps.api && loadToken(deps.api.token_file, deps.log);
  const socketApp = buildApp(deps, { via: 'socket' });
  const bound = await listenSocket(socketApp, deps.stateDir, deps.log);
  let tcp: { app: FastifyInstance; port: number } | null = null;
  try {
    if (deps.api && token) tcp = await listenTcp(deps, deps.api, token);
  } catch (e) {
    await closeSocket(socketApp, bound);
    throw e;
  }
  return {
    port: tcp?.port ?? null,
    socketPath: bound?.path ?? null,
    close: async () => {
      try {
        await tcp?.app.close();
      } finally {
        await closeSocket(socketApp, bound);
      }
    },
  };
}

async function listenTcp(deps: ApiDeps, api: ApiConfig, token: string) {
  const loopback = isLoopback(api.host);
  const app = buildApp(deps, { via: 'tcp', loopback, tokenDigest: tokenDigest(token) });
  try {
    await app.listen({ port: api.port, host: api.host });
  } catch (e) {
    await app.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : api.port;
  const host = api.host.includes(':') ? `[${api.host}]` : api.host;
  const rule = loopback ? 'mutations need' : 'every route needs';
  deps.log.info(`api on http://${host}:${port} (${rule} the bearer token in ${api.token_file})`);
  return { app, port };
}

async function closeSocket(app: FastifyInstance, bound: BoundSocket | null): Promise<void> {
  await app.close();
  if (bound) removeSocket(bound);
}

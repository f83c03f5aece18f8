import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The payload of a `version` event. */
export interface VersionEvent {
  pipeline: string;
  version: number;
  path: string;
}

export interface SseHubOptions {
  /** 0 picks a free port (tests) */
  port: number;
  /** default 127.0.0.1: the stream reveals model paths, keep it off the network unless asked */
  host?: string;
  /** comment line sent this often so proxies and clients notice dead connections; default 15 s */
  heartbeatMs?: number;
}

/**
 * Server-sent events at `GET /events` (optionally `?pipeline=name`). Each publication is sent as
 *   event: version / id: <pipeline>/<N> / data: {"pipeline","version","path"}
 * A client that connects is first sent the latest event of every pipeline, so a model server
 * started after a publication still learns the current version.
 */
export class SseHub {
  private server: Server | null = null;
  private readonly clients = new Set<{ res: ServerResponse; pipeline: string | null }>();
  private readonly latest = new Map<string, VersionEvent>();
  private heartbeat: NodeJS.Timeout | null = null;
  private boundPort = 0;

  constructor(private readonly opts: SseHubOptions) {}

  get port(): number {
    return this.boundPort;
  }
  get host(): string {
    return this.opts.host ?? '127.0.0.1';
  }
  get clientCount(): number {
    return this.clients.size;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.boundPort = (server.address() as AddressInfo).port;
    this.heartbeat = setInterval(() => {
      for (const client of this.clients) client.res.write(': ping\n\n');
    }, this.opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  /** Send to every connected client (of that pipeline); returns how many were sent the event. */
  broadcast(ev: VersionEvent): number {
    this.latest.set(ev.pipeline, ev);
    let sent = 0;
    for (const client of this.clients) {
      if (client.pipeline === null || client.pipeline === ev.pipeline) {
        client.res.write(frame(ev));
        sent++;
      }
    }
    return sent;
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const client of this.clients) client.res.end();
    this.clients.clear();
    const server = this.server;
    this.server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/events') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; events are at /events\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const pipeline = url.searchParams.get('pipeline');
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 3000\n\n');
    for (const ev of this.latest.values()) if (pipeline === null || pipeline === ev.pipeline) res.write(frame(ev));
    const client = { res, pipeline };
    this.clients.add(client);
    req.on('close', () => this.clients.delete(client));
  }
}

function frame(ev: VersionEvent): string {
  return `event: version\nid: ${ev.pipeline}/${ev.version}\ndata: ${JSON.stringify(ev)}\n\n`;
}

/**
 * One hub per host:port, shared by every pipeline that names it. Start hubs when the daemon
 * starts (so servers can subscribe before the first publication) and close them on shutdown.
 */
export class SseHubs {
  private readonly hubs = new Map<string, Promise<SseHub>>();

  get(port: number, host = '127.0.0.1'): Promise<SseHub> {
    const key = `${host}:${port}`;
    let started = this.hubs.get(key);
    if (!started) {
      const hub = new SseHub({ port, host });
      started = hub.start().then(() => {
        // Port 0 binds a free port: make the hub findable under the port it got, too.
        if (port === 0) this.hubs.set(`${host}:${hub.port}`, Promise.resolve(hub));
        return hub;
      });
      started.catch(() => this.hubs.delete(key)); // a failed bind may be retried later
      this.hubs.set(key, started);
    }
    return started;
  }

  async closeAll(): Promise<void> {
    const all = [...this.hubs.values()];
    this.hubs.clear();
    const hubs = new Set(await Promise.all(all.map((started) => started.catch(() => null))));
    await Promise.all([...hubs].map((hub) => hub?.close()));
  }
}

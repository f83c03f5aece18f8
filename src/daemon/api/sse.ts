import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { DaemonEvents } from '../events.js';
import { ApiError } from './errors.js';

/**
 * `GET /v1/events`: the daemon's events as server-sent events, `event: <type>`, `id: <n>`,
 * `data: <the event as JSON, with "at">`, optionally only one pipeline's (`?pipeline=`). A comment
 * line every heartbeat keeps proxies and idle timeouts from closing a quiet stream. Events are not
 * replayed: a client sees what happens while it is connected (the history routes have the rest).
 */
export interface EventStreamOptions {
  events: DaemonEvents;
  /** 404 for a filter naming no pipeline */
  known: (pipeline: string) => boolean;
  heartbeatMs: number;
}

/** A client that does not read (its buffered events pass this) is disconnected, not buffered forever. */
const MAX_BUFFERED_BYTES = 1 << 20;

const query = {
  type: 'object',
  additionalProperties: false,
  properties: { pipeline: { type: 'string', minLength: 1 } },
} as const;

/** Registers the route; the returned function ends every open stream (before the server closes). */
export function registerEvents(app: FastifyInstance, opts: EventStreamOptions): () => void {
  const streams = new Set<ServerResponse>();
  app.get<{ Querystring: { pipeline?: string } }>('/v1/events', { schema: { querystring: query } }, (req, reply) => {
    const only = req.query.pipeline;
    if (only !== undefined && !opts.known(only)) throw new ApiError(404, `unknown pipeline "${only}"`);
    // the stream outlives the handler: fastify hands the response over
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    // headers out now, so a client knows it is subscribed before the first event
    res.write(': cmerge events\n\n');
    const send = (text: string) => {
      if (res.writableLength > MAX_BUFFERED_BYTES) res.destroy();
      else res.write(text);
    };
    const off = opts.events.on(({ id, at, event }) => {
      if (only === undefined || event.pipeline === only)
        send(`event: ${event.type}\nid: ${id}\ndata: ${JSON.stringify({ ...event, at })}\n\n`);
    });
    const beat = setInterval(() => send(': heartbeat\n\n'), opts.heartbeatMs);
    streams.add(res);
    res.on('close', () => {
      off();
      clearInterval(beat);
      streams.delete(res);
    });
  });
  return () => {
    for (const res of streams) res.end();
  };
}

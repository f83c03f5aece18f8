import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'winston';
import type { Store } from '../../store/index.js';
import type { OperationResult, Operations } from '../operations/types.js';
import { ApiError } from './errors.js';
import * as s from './schemas.js';
import { showView } from './show-view.js';
import { historyView, pipelineNames, statusView } from '../../store/views.js';

/** What the routes read and call. */
export interface RouteContext {
  store: Store;
  operations: Operations;
  /** configured pipeline names, read per request (a reload may change them) */
  configured: () => readonly string[];
  log: Logger;
}

type P = { Params: s.PipelineParams };
type V = { Params: s.VersionParams };

/** 404 unless the pipeline is configured or recorded. */
function checkPipeline(ctx: RouteContext, pipeline: string): void {
  if (!pipelineNames(ctx.store, ctx.configured()).includes(pipeline))
    throw new ApiError(404, `unknown pipeline "${pipeline}"`);
}

/** The read-only routes: status, history, one version, the HTML report, health. */
export function registerReads(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/v1/pipelines', async () => statusView(ctx.store, pipelineNames(ctx.store, ctx.configured())));
  app.get<P>('/v1/pipelines/:pipeline/history', { schema: { params: s.pipelineParams } }, async (req) => {
    checkPipeline(ctx, req.params.pipeline);
    return historyView(ctx.store, [req.params.pipeline], req.params.pipeline);
  });
  app.get<V>('/v1/pipelines/:pipeline/versions/:version', { schema: { params: s.versionParams } }, async (req) => {
    const { pipeline, version } = req.params;
    checkPipeline(ctx, pipeline);
    const shown = await showView(ctx.store, pipeline, Number(version));
    if (!shown) throw new ApiError(404, `no version ${version} of pipeline "${pipeline}" is recorded`);
    return shown;
  });
  app.get<P>('/report/:pipeline', { schema: { params: s.pipelineParams } }, async (req, reply) => {
    checkPipeline(ctx, req.params.pipeline);
    // loaded on the first request: the report renders with Vega, which every other command and
    // a daemon nobody asks for a report would load for nothing
    const { renderPipelineReport } = await import('../../report/index.js');
    const html = await renderPipelineReport(ctx.store, req.params.pipeline);
    return reply.type('text/html; charset=utf-8').send(html);
  });
}

/** A missing body counts as `{}` for the routes whose fields are all optional. */
async function emptyBodyIsObject(req: FastifyRequest): Promise<void> {
  if (req.body === undefined || req.body === null) req.body = {};
}

/**
 * The operator's mutations, each one call of Operations (which records and announces it, and
 * throws OperationError, mapped to 404/409/400, when it refuses).
 */
export function registerMutations(app: FastifyInstance, ctx: RouteContext): void {
  const ops = ctx.operations;
  const logged = async (req: FastifyRequest, run: () => Promise<OperationResult>) => {
    const result = await run();
    ctx.log.info(`api ${req.method} ${req.url}: ${result.detail}`);
    return result;
  };
  const optional = { preValidation: emptyBodyIsObject };
  // after validation (a bad body is a 400 whatever the pipeline), before the operation
  const preHandler = async (req: FastifyRequest<P>) => checkPipeline(ctx, req.params.pipeline);
  const body = (schema: object, params: object = s.pipelineParams) => ({
    schema: { params, body: schema },
    preHandler,
  });
  app.post<P & { Body: s.RollbackBody }>('/v1/pipelines/:pipeline/rollback', body(s.rollbackBody), (req) =>
    logged(req, () => ops.rollback(req.params.pipeline, req.body.version, { anyEngine: req.body.any_engine })),
  );
  app.post<P & { Body: s.RevertBody }>('/v1/pipelines/:pipeline/revert', body(s.revertBody), (req) =>
    logged(req, () => ops.revert(req.params.pipeline, req.body.checkpoint, { anyEngine: req.body.any_engine })),
  );
  app.post<P & { Body: s.PauseBody }>('/v1/pipelines/:pipeline/pause', { ...body(s.pauseBody), ...optional }, (req) =>
    logged(req, () => ops.pause(req.params.pipeline, req.body.reason)),
  );
  app.post<P>('/v1/pipelines/:pipeline/resume', { ...body(s.emptyBody), ...optional }, (req) =>
    logged(req, () => ops.resume(req.params.pipeline)),
  );
  app.post<P & { Body: s.CheckpointBody }>('/v1/pipelines/:pipeline/requeue', body(s.checkpointBody), (req) =>
    logged(req, () => ops.requeue(req.params.pipeline, req.body.checkpoint)),
  );
  app.post<P & { Body: s.CheckpointBody }>('/v1/pipelines/:pipeline/dequeue', body(s.checkpointBody), (req) =>
    logged(req, () => ops.dequeue(req.params.pipeline, req.body.checkpoint)),
  );
  const pin = { ...body(s.emptyBody, s.versionParams), ...optional };
  app.post<V>('/v1/pipelines/:pipeline/versions/:version/pin', pin, (req) =>
    logged(req, () => ops.pin(req.params.pipeline, Number(req.params.version))),
  );
  app.delete<V>('/v1/pipelines/:pipeline/versions/:version/pin', pin, (req) =>
    logged(req, () => ops.unpin(req.params.pipeline, Number(req.params.version))),
  );
}

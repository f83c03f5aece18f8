import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'winston';
import { HTTP_STATUS, OperationError } from '../operations/types.js';

/** A refusal of the API itself (unknown pipeline or version): the status and `{"error": message}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const POSITIVE_INT = '^[1-9][0-9]{0,8}$';

/** One ajv error as `<part>.<field>: <problem>`, the field always named. */
interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

export function validationMessage(part: string, v: AjvError): string {
  const at = [part, ...v.instancePath.split('/').filter(Boolean)].join('.');
  if (v.keyword === 'additionalProperties') return `${at}.${String(v.params.additionalProperty)}: unknown field`;
  if (v.keyword === 'required') return `${at}.${String(v.params.missingProperty)}: required`;
  if (v.keyword === 'pattern' && v.params.pattern === POSITIVE_INT) return `${at}: must be an integer ≥ 1`;
  if (v.keyword === 'type' && !v.instancePath && part === 'body') return 'body: must be a JSON object';
  return `${at}: ${v.message ?? v.keyword}`;
}

/**
 * Every error as `{"error": message}`: OperationError by its code (404/409/400), schema
 * violations 400 with the field, fastify's own client errors (bad JSON, 415) as they are; anything
 * else is a daemon bug: 500, logged.
 */
export function errorHandler(log: Logger) {
  return (error: FastifyError, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (error instanceof OperationError) return reply.code(HTTP_STATUS[error.code]).send({ error: error.message });
    if (error instanceof ApiError) return reply.code(error.status).send({ error: error.message });
    if (error.validation?.length)
      return reply
        .code(400)
        .send({ error: validationMessage(error.validationContext ?? 'request', error.validation[0]!) });
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send({ error: error.message });
    log.error(`api ${req.method} ${req.url} failed: ${error.stack ?? error.message}`);
    return reply.code(500).send({ error: error.message });
  };
}

export function notFoundHandler(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` });
}

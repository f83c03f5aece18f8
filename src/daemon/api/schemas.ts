import { POSITIVE_INT } from './errors.js';

/**
 * JSON schemas of the routes' path parameters and bodies. Every object is closed
 * (`additionalProperties: false`: a misspelled field is an error, not ignored) and nothing is
 * coerced (`"version": "3"` is refused), as in the config file.
 */
const pipeline = { type: 'string', minLength: 1 } as const;
// path segments are strings; the pattern makes "3" a version and "03", "0", "x" errors
const version = { type: 'string', pattern: POSITIVE_INT } as const;
const anyEngine = { type: 'boolean' } as const;

export const pipelineParams = {
  type: 'object',
  additionalProperties: false,
  required: ['pipeline'],
  properties: { pipeline },
} as const;

export const versionParams = {
  type: 'object',
  additionalProperties: false,
  required: ['pipeline', 'version'],
  properties: { pipeline, version },
} as const;

export const rollbackBody = {
  type: 'object',
  additionalProperties: false,
  required: ['version'],
  properties: { version: { type: 'integer', minimum: 1 }, any_engine: anyEngine },
} as const;

export const revertBody = {
  type: 'object',
  additionalProperties: false,
  required: ['checkpoint'],
  properties: { checkpoint: { type: 'string', minLength: 1 }, any_engine: anyEngine },
} as const;

/** requeue and dequeue: the checkpoint's name */
export const checkpointBody = {
  type: 'object',
  additionalProperties: false,
  required: ['checkpoint'],
  properties: { checkpoint: { type: 'string', minLength: 1 } },
} as const;

export const pauseBody = {
  type: 'object',
  additionalProperties: false,
  properties: { reason: { type: 'string', minLength: 1 } },
} as const;

/** resume, pin, unpin: no fields; an empty object or no body at all */
export const emptyBody = { type: 'object', additionalProperties: false, properties: {} } as const;

export interface PipelineParams {
  pipeline: string;
}
export interface VersionParams extends PipelineParams {
  version: string;
}
export interface RollbackBody {
  version: number;
  any_engine?: boolean;
}
export interface RevertBody {
  checkpoint: string;
  any_engine?: boolean;
}
export interface CheckpointBody {
  checkpoint: string;
}
export interface PauseBody {
  reason?: string;
}

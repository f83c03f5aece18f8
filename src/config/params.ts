import { ConfigError } from './errors.js';
import { validate } from './issues.js';
import { methods, type MethodName, type MethodParams } from '../methods/registry.js';

/**
 * Validate and default-fill a method's params outside a config file with the method's own schema
 * (src/methods/registry.ts); `source` labels the ConfigError the way a file name would.
 */
export function parseParams<M extends MethodName>(method: M, params: unknown, source = 'params'): MethodParams[M] {
  const r = validate(methods[method].params, params ?? {});
  if (!r.ok) throw new ConfigError(source, r.issues);
  return r.data as MethodParams[M];
}

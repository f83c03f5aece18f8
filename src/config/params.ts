import { ConfigError } from './errors.js';
import { toConfigIssues } from './issues.js';
import { methods, type MethodName, type MethodParams } from '../methods/registry.js';

/**
 * Validate and default-fill a method's params outside a config file with the method's own schema
 * (src/methods/registry.ts); `source` labels the ConfigError the way a file name would.
 */
export function parseParams<M extends MethodName>(method: M, params: unknown, source = 'params'): MethodParams[M] {
  const r = methods[method].params.safeParse(params ?? {});
  if (!r.success) throw new ConfigError(source, toConfigIssues(r.error, params));
  return r.data as MethodParams[M];
}

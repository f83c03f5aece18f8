import { ConfigError } from '../config/errors.js';
import { InputError } from '../io/types.js';

/** A usage error: bad flags or values. Exit code 2. */
export class UsageError extends Error {}

/** Prints one line on stderr (a config error: one per problem) and returns the exit code. */
export function reportError(e: unknown): number {
  if (e instanceof ConfigError) {
    for (const line of e.message.split('\n')) process.stderr.write(`cmerge: ${line}\n`);
    return 1;
  }
  if (e instanceof InputError) {
    process.stderr.write(`cmerge: ${e.file}: ${e.reason}\n`);
    return 1;
  }
  if (e instanceof UsageError) {
    process.stderr.write(`cmerge: ${e.message}\n`);
    return 2;
  }
  const msg = e instanceof Error ? e.message : String(e);
  process.stderr.write(`cmerge: ${msg.split('\n')[0]}\n`);
  if (process.env.CMERGE_DEBUG && e instanceof Error) process.stderr.write(String(e.stack) + '\n');
  return 1;
}

import type { Command } from 'commander';
import { loadConfig } from '../config/index.js';
import type { OperationResult, Operations } from '../daemon/operations/index.js';
import { withStandaloneOperations } from '../daemon/operations/standalone.js';
import { configureLog } from '../util/log.js';
import { UsageError } from './errors.js';
import { callDaemon, DaemonNotRunning } from './daemon-client.js';
import { printJson } from './inspect-common.js';

/** One operator command: its API request (daemon running) and its direct call (no daemon). */
interface Operation {
  method: 'POST' | 'DELETE';
  path: string;
  body?: Record<string, unknown>;
  direct: (ops: Operations) => Promise<OperationResult>;
}

interface CommonOpts {
  config: string;
  json?: boolean;
}

/**
 * Through the running daemon's socket when one answers (it holds the state lock), else directly
 * under the lock (docs/operations.md); never both: a daemon starting meanwhile is refused the lock.
 */
async function operate(opts: CommonOpts, pipeline: string, op: Operation): Promise<void> {
  configureLog({ stream: 'stderr', level: 'warn' });
  const config = loadConfig(opts.config);
  let result: OperationResult;
  try {
    result = (await callDaemon(config.state_dir, op.method, op.path, op.body)) as OperationResult;
  } catch (e) {
    if (!(e instanceof DaemonNotRunning)) throw e;
    result = await withStandaloneOperations(opts.config, pipeline, op.direct);
  }
  if (opts.json) printJson(result);
  else process.stdout.write(`${pipeline}: ${result.detail}\n`);
}

function positiveInt(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`"${s}" is not a version number`);
  return n;
}

const p = (pipeline: string) => `/v1/pipelines/${encodeURIComponent(pipeline)}`;

function command(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .requiredOption('--config <file>', "the daemon's YAML config")
    .option('--json', 'print the result as JSON');
}

export function registerOperate(program: Command): void {
  command(program, 'rollback', 'make an earlier version current again; the next merge continues from its state')
    .argument('<pipeline>')
    .argument('<version>')
    .option('--any-engine', 'replay on the configured engine even if another made the version')
    .action((pipeline: string, v: string, o: CommonOpts & { anyEngine?: boolean }) => {
      const version = positiveInt(v);
      const anyEngine = o.anyEngine ?? false;
      return operate(o, pipeline, {
        method: 'POST',
        path: `${p(pipeline)}/rollback`,
        body: { version, any_engine: anyEngine },
        direct: (ops) => ops.rollback(pipeline, version, { anyEngine }),
      });
    });
  command(program, 'revert', 'publish a new version without one checkpoint (name or sha256 prefix), rebuilt by replay')
    .argument('<pipeline>')
    .argument('<checkpoint>')
    .option('--any-engine', 'replay on the configured engine even if another made the current version')
    .action((pipeline: string, checkpoint: string, o: CommonOpts & { anyEngine?: boolean }) => {
      const anyEngine = o.anyEngine ?? false;
      return operate(o, pipeline, {
        method: 'POST',
        path: `${p(pipeline)}/revert`,
        body: { checkpoint, any_engine: anyEngine },
        direct: (ops) => ops.revert(pipeline, checkpoint, { anyEngine }),
      });
    });
  for (const [name, method] of [
    ['pin', 'POST'],
    ['unpin', 'DELETE'],
  ] as const)
    command(program, name, name === 'pin' ? 'keep a version through retention' : 'let retention remove a version again')
      .argument('<pipeline>')
      .argument('<version>')
      .action((pipeline: string, v: string, o: CommonOpts) => {
        const version = positiveInt(v);
        return operate(o, pipeline, {
          method,
          path: `${p(pipeline)}/versions/${version}/pin`,
          direct: (ops) => (name === 'pin' ? ops.pin(pipeline, version) : ops.unpin(pipeline, version)),
        });
      });
  registerQueueCommands(program);
  registerPauseCommands(program);
  command(program, 'resume', 'merge the queue again')
    .argument('<pipeline>')
    .action((pipeline: string, o: CommonOpts) =>
      operate(o, pipeline, { method: 'POST', path: `${p(pipeline)}/resume`, direct: (ops) => ops.resume(pipeline) }),
    );
}

/** requeue and dequeue: a checkpoint by name, in and out of quarantine. */
function registerQueueCommands(program: Command): void {
  for (const [name, what] of [
    ['requeue', 'move a rejected checkpoint back from quarantine to the drop folder and take it again'],
    ['dequeue', 'take a queued checkpoint out before it merges (to quarantine; requeue brings it back)'],
  ] as const)
    command(program, name, what)
      .argument('<pipeline>')
      .argument('<checkpoint>', 'its name as status lists it')
      .action((pipeline: string, checkpoint: string, o: CommonOpts) =>
        operate(o, pipeline, {
          method: 'POST',
          path: `${p(pipeline)}/${name}`,
          body: { checkpoint },
          direct: (ops) => (name === 'requeue' ? ops.requeue(pipeline, checkpoint) : ops.dequeue(pipeline, checkpoint)),
        }),
      );
}

/** pause and resume: merging stops and goes on; intake keeps queueing. */
function registerPauseCommands(program: Command): void {
  command(program, 'pause', 'stop merging after the running merge (intake keeps queueing)')
    .argument('<pipeline>')
    .option('--reason <text>', 'shown by status and the API', 'paused by the operator')
    .action((pipeline: string, o: CommonOpts & { reason: string }) =>
      operate(o, pipeline, {
        method: 'POST',
        path: `${p(pipeline)}/pause`,
        body: { reason: o.reason },
        direct: (ops) => ops.pause(pipeline, o.reason),
      }),
    );
}

import { loadConfig } from '../../config/index.js';
import { SseHubs } from '../../publish/index.js';
import { openStore } from '../../store/index.js';
import { log } from '../../util/log.js';
import { Limiter } from '../limiter.js';
import { PipelineRunner } from '../pipeline.js';
import { acquireStateLock } from '../state-lock.js';
import { PipelineOperations } from './index.js';
import { OperationError, type Operations } from './types.js';

/**
 * The operations with no daemon running (docs/operations.md): under the state lock (refused while
 * a daemon or another command holds it), the pipeline first recovered as the daemon would on
 * start (an interrupted merge recorded, files reconciled with SQLite), then `fn`, then what it
 * set going (notifiers, evaluator, retention) before the lock is released.
 */
export async function withStandaloneOperations<T>(
  configPath: string,
  pipeline: string,
  fn: (ops: Operations) => Promise<T>,
): Promise<T> {
  const config = loadConfig(configPath, { paths: 'daemon' });
  const cfg = config.pipelines.find((p) => p.name === pipeline);
  if (!cfg) throw new OperationError('not_found', `no pipeline "${pipeline}" in ${config.file}`);
  const lock = acquireStateLock(config.state_dir);
  const store = openStore(config.db_path);
  const sse = new SseHubs();
  try {
    store.recoverInterrupted();
    const runner = new PipelineRunner(cfg, {
      store,
      limiter: new Limiter(1),
      log: log.child({ pipeline }),
      stateRoot: config.state_dir,
      sse,
      threads: config.threads,
      // only a merge's publication reads it; operations take the base from the current manifest
      baseSha256: '',
      metrics: null,
      onFatal: (e) => log.error(`engine failure: ${e.message}`),
    });
    await runner.recover();
    const ops = new PipelineOperations({
      store,
      log,
      events: null,
      via: 'cli',
      runner: (n) => (n === pipeline ? runner : undefined),
    });
    const result = await fn(ops);
    await ops.settle();
    return result;
  } finally {
    await sse.closeAll();
    store.close();
    lock.release();
  }
}

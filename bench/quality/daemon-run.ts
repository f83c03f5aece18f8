import { spawn } from 'node:child_process';
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DB_FILE_NAME } from '../../src/config/index.js';
import { HEAD_PATTERN } from '../../src/demo/digits/model.js';
import type { Zoo } from '../../src/demo/digits/zoo.js';
import { openStore, type AccuracySummary, type Store } from '../../src/store/index.js';
import { cliPath, repoRoot } from '../lib.js';

export const EVALUATOR = join(repoRoot, 'dist', 'examples', 'evaluate-digits.js');

export interface OrderResult {
  readonly order: readonly string[];
  /** per method (pipeline name), the store's accuracy summary after the last version */
  readonly methods: Record<string, AccuracySummary>;
  readonly seconds: number;
}

/** One daemon, one pipeline per method, each with its own drop folder and the example evaluator. */
function writeConfig(dir: string, base: string, methods: readonly string[]): string {
  const lines = ['state_dir: ./state', 'log_level: info', 'pipelines:'];
  for (const m of methods) {
    lines.push(
      `  - name: ${m}`,
      `    base: ${JSON.stringify(base)}`,
      `    drop: ./drop-${m}`,
      '    repository: ./published',
      `    method: ${m}`,
      '    settle_ms: 200',
      `    tensors: {exclude: [${JSON.stringify(HEAD_PATTERN)}]}`,
      `    evaluator: {argv: [${JSON.stringify(process.execPath)}, ${JSON.stringify(EVALUATOR)}], timeout_s: 300}`,
    );
  }
  const path = join(dir, 'cmerge.yaml');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

async function waitEvaluated(
  store: Store,
  methods: readonly string[],
  version: number,
  deadline: number,
): Promise<void> {
  for (const m of methods) {
    while (store.version(m, version) === null || store.evaluations(m, version).length === 0) {
      if (Date.now() > deadline) throw new Error(`${m}: version ${version} not evaluated in time (see daemon.log)`);
      await sleep(200);
    }
  }
}

/**
 * Runs `cmerge daemon` as its own process and drops the fine-tuned checkpoints in `order` into
 * every method's drop folder (a dot-named copy, then a rename), the next one after every method
 * has published and evaluated the previous. Reuses `dir/result.json` when it exists for this order.
 */
export async function runOrder(
  dir: string,
  zoo: Zoo,
  order: readonly string[],
  methods: readonly string[],
): Promise<OrderResult> {
  const resultPath = join(dir, 'result.json');
  if (existsSync(resultPath)) {
    const old = JSON.parse(readFileSync(resultPath, 'utf8')) as OrderResult;
    if (JSON.stringify(old.order) === JSON.stringify(order) && methods.every((m) => old.methods[m])) return old;
  }
  rmSync(dir, { recursive: true, force: true }); // an unfinished earlier run starts over
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const config = writeConfig(dir, zoo.base, methods);
  const log = createWriteStream(join(dir, 'daemon.log'));
  const daemon = spawn(process.execPath, [cliPath, 'daemon', '--config', config], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  daemon.stdout.pipe(log);
  daemon.stderr.pipe(log);
  const exited = new Promise<number | null>((resolve) => daemon.on('exit', (code) => resolve(code)));
  try {
    while (!existsSync(join(dir, 'state', DB_FILE_NAME))) await sleep(100);
    await sleep(500);
    const store = openStore(join(dir, 'state', DB_FILE_NAME), { readonly: true });
    try {
      for (const [i, task] of order.entries()) {
        const source = zoo.checkpoints.find((c) => c.task === task)!.path;
        for (const m of methods) {
          const drop = join(dir, `drop-${m}`);
          mkdirSync(drop, { recursive: true });
          copyFileSync(source, join(drop, `.${task}.safetensors.part`));
          renameSync(join(drop, `.${task}.safetensors.part`), join(drop, `${task}.safetensors`));
        }
        await waitEvaluated(store, methods, i + 1, Date.now() + 30 * 60_000);
      }
      const result: OrderResult = {
        order,
        methods: Object.fromEntries(methods.map((m) => [m, store.accuracySummary(m)])),
        seconds: (Date.now() - started) / 1000,
      };
      writeFileSync(resultPath, JSON.stringify(result) + '\n');
      return result;
    } finally {
      store.close();
    }
  } finally {
    daemon.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) process.stderr.write(`daemon in ${dir} exited with ${code}\n`);
  }
}

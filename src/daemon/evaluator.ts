import { execFile } from 'node:child_process';
import type { EvaluatorConfig } from '../config/index.js';

/**
 * Runs the pipeline's evaluator on a published version: argv + the version folder; it prints
 * per-task scores as one JSON object ({"task_0": 0.91, ...}) on stdout.
 */
export function runEvaluator(cfg: EvaluatorConfig, versionDir: string): Promise<Record<string, number>> {
  const [cmd, ...args] = cfg.argv;
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      [...args, versionDir],
      { timeout: cfg.timeout_s * 1000, maxBuffer: 16 << 20, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err)
          return reject(new Error(`evaluator failed: ${err.message.split('\n')[0]} ${String(stderr).slice(-500)}`));
        try {
          const parsed: unknown = JSON.parse(String(stdout).trim().split('\n').pop() ?? '');
          if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
            throw new Error('not a JSON object');
          const scores: Record<string, number> = {};
          for (const [task, score] of Object.entries(parsed))
            if (typeof score === 'number' && Number.isFinite(score)) scores[task] = score;
          resolve(scores);
        } catch (e) {
          reject(new Error(`evaluator output is not a JSON object of scores: ${(e as Error).message}`));
        }
      },
    );
  });
}

import { spawn } from 'node:child_process';
import { renderTemplate } from './template.js';
import { Tail } from './retry.js';
import type { AttemptResult } from './http.js';
import type { CommandNotifierConfig, NotifyContext } from './types.js';

/** After SIGTERM to the group, how long before SIGKILL. */
const KILL_GRACE_MS = 2000;

/**
 * One attempt: spawn argv (templated, no shell: a path with spaces or `;` stays one argument) in
 * its own process group, so a timeout kills the command and everything it started. Success is
 * exit code 0. Never throws.
 */
export function commandAttempt(
  cfg: CommandNotifierConfig,
  ctx: NotifyContext,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<AttemptResult> {
  return new Promise((resolve) => {
    if (!cfg.argv?.length) return resolve({ ok: false, detail: 'command notifier needs a non-empty argv' });
    const argv = cfg.argv.map((a) => renderTemplate(a, ctx));
    const stderr = new Tail(2000);
    let timedOut = false;
    let aborted = false;
    let settled = false;
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: cfg.cwd,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        ...cfg.env,
        CMERGE_VERSION: String(ctx.version),
        CMERGE_PATH: ctx.path,
        CMERGE_PIPELINE: ctx.pipeline,
        CMERGE_MODEL_FILE: ctx.modelFile,
      },
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));

    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutMs);
    const onAbort = () => {
      aborted = true;
      stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    child.on('error', (err) => finish({ ok: false, exitCode: null, detail: `${argv[0]}: ${err.message}` }));
    // 'exit', not 'close': a command that leaves a background process holding stderr open
    // (a server it restarted) must not keep the notifier waiting.
    child.on('exit', (code, sig) => {
      setImmediate(() => {
        child.stderr?.destroy();
        const err = stderr.toString().trim();
        const why = timedOut
          ? `timed out after ${timeoutMs / 1000} s`
          : aborted
            ? 'aborted (shutdown)'
            : sig
              ? `killed by ${sig}`
              : `exit ${code}`;
        finish({ ok: code === 0 && !timedOut, exitCode: code, detail: err ? `${why}; stderr: ${err}` : why });
      });
    });
  });
}

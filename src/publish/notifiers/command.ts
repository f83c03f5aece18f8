import { spawn, type ChildProcess } from 'node:child_process';
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
    const argv = cfg.argv.map((arg) => renderTemplate(arg, ctx));
    const stderr = new Tail(2000);
    const child = spawnInGroup(cfg, ctx, argv);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));

    const group = groupStopper(child);
    const stopped: StopFlags = { timedOut: false, aborted: false };
    const timer = setTimeout(() => {
      stopped.timedOut = true;
      group.stop();
    }, timeoutMs);
    const onAbort = () => {
      stopped.aborted = true;
      group.stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    let settled = false;
    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      group.cancelKill();
      signal?.removeEventListener('abort', onAbort);
      resolve(result);
    };
    child.on('error', (err) => finish({ ok: false, exitCode: null, detail: `${argv[0]}: ${err.message}` }));
    // 'exit', not 'close': a command that leaves a background process holding stderr open
    // (a server it restarted) must not keep the notifier waiting.
    child.on('exit', (code, exitSignal) => {
      setImmediate(() => {
        child.stderr?.destroy();
        finish(exitResult(code, exitSignal, stopped, timeoutMs, stderr.toString().trim()));
      });
    });
  });
}

/** Why the notifier stopped the command, if it did (both can be set; the timeout wins). */
interface StopFlags {
  timedOut: boolean;
  aborted: boolean;
}

/** argv in its own process group (detached), stderr piped, the version in CMERGE_* variables. */
function spawnInGroup(cfg: CommandNotifierConfig, ctx: NotifyContext, argv: string[]): ChildProcess {
  return spawn(argv[0]!, argv.slice(1), {
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
}

/** `stop()`: SIGTERM to the child's process group, SIGKILL after KILL_GRACE_MS unless cancelled. */
function groupStopper(child: ChildProcess): { stop: () => void; cancelKill: () => void } {
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      /* already gone */
    }
  };
  let killTimer: NodeJS.Timeout | undefined;
  return {
    stop: () => {
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    },
    cancelKill: () => clearTimeout(killTimer),
  };
}

function exitResult(
  code: number | null,
  exitSignal: NodeJS.Signals | null,
  stopped: StopFlags,
  timeoutMs: number,
  stderr: string,
): AttemptResult {
  const why = stopped.timedOut
    ? `timed out after ${timeoutMs / 1000} s`
    : stopped.aborted
      ? 'aborted (shutdown)'
      : exitSignal
        ? `killed by ${exitSignal}`
        : `exit ${code}`;
  return { ok: code === 0 && !stopped.timedOut, exitCode: code, detail: stderr ? `${why}; stderr: ${stderr}` : why };
}

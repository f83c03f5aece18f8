import cliProgress from 'cli-progress';
import type { MergeProgress } from '../merge/runner.js';

/** Per-tensor progress on a terminal (stderr); nothing when stderr is not a TTY. */
export function mergeProgress(): { onProgress?: (p: MergeProgress) => void; stop(): void } {
  if (!process.stderr.isTTY) return { stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'step {t} {phase} [{bar}] {value}/{total} {tensor}',
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let key = '';
  return {
    onProgress(p) {
      const k = `${p.t}:${p.phase}`;
      if (k !== key) {
        if (key) bar.stop();
        key = k;
        bar.start(p.total, 0, { t: p.t, phase: p.phase, tensor: '' });
      }
      bar.update(p.index + 1, { t: p.t, phase: p.phase, tensor: p.tensor.slice(-48) });
    },
    stop() {
      if (key) bar.stop();
    },
  };
}

/** What bin/cmerge.js recorded before the daemon's modules were loaded. */
interface EarlySignals {
  pending: NodeJS.Signals[];
  record: (signal: NodeJS.Signals) => void;
}

/**
 * The signals that arrived before the daemon installed its handlers, in order; stops recording
 * them (call once the daemon's own handlers are installed).
 */
export function takeEarlySignals(): NodeJS.Signals[] {
  const early = (globalThis as { cmergeEarlySignals?: EarlySignals }).cmergeEarlySignals;
  if (!early) return [];
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(s, early.record);
  delete (globalThis as { cmergeEarlySignals?: EarlySignals }).cmergeEarlySignals;
  return early.pending.splice(0);
}

/** Wait before retry number `failures` (1, 2, ...) of work that failed for reasons outside it: 5 s doubling, at most 10 min. */
export function retryDelayMs(failures: number): number {
  return Math.min(600_000, 5_000 * 2 ** (failures - 1));
}

export { openStore, Store } from './store.js';
export { StoreError, type OpenOptions } from './db.js';
export { SCHEMA_VERSION } from './migrations.js';
export { checkpointFiles } from './archive.js';
export type { Arrival, EnqueueResult, RejectedArrival } from './queue.js';
export { waitingReasonText, type WaitingInput } from './waiting.js';
export { SHUTDOWN_REASON, type CommitMergeInput, type MergeStart } from './merges.js';
export type { VersionInput } from './lineage.js';
export type { AccuracySummary, NotificationInput } from './metrics.js';
export { gpuFigures, type HistoryRow, type LastEngine, type PipelineStatus, type VersionDetail } from './inspect.js';
export type * from './types.js';
export type { OperationRecord, PauseKind, PauseState, StateInput } from './operations.js';
export {
  reportData,
  type AccuracyPoint,
  type LineageStatus,
  type ReportData,
  type ReportMerge,
  type ReportNotification,
  type ReportVersion,
} from './report-data.js';

/**
 * What an operator can do to a pipeline (docs/operations.md), whether the daemon runs (its API
 * calls these) or not (the CLI calls them itself under the state lock). Each mutation is recorded
 * in the `operations` table and announced as an event.
 */
export interface Operations {
  /** `current` → that version; its lineage becomes the pipeline's; later checkpoints are marked rolled_back */
  rollback(pipeline: string, version: number, opts?: ReplayOptions): Promise<OperationResult>;
  /** a new version: the current lineage without that checkpoint (name or sha256 prefix), rebuilt by replay */
  revert(pipeline: string, checkpoint: string, opts?: ReplayOptions): Promise<OperationResult>;
  pin(pipeline: string, version: number): Promise<OperationResult>;
  unpin(pipeline: string, version: number): Promise<OperationResult>;
  /** merging stops after the running merge (intake keeps queueing) until resume */
  pause(pipeline: string, reason?: string): Promise<OperationResult>;
  resume(pipeline: string): Promise<OperationResult>;
  /** a rejected checkpoint back from quarantine to the drop folder, its rejection cleared */
  requeue(pipeline: string, checkpoint: string): Promise<OperationResult>;
  /** a queued checkpoint taken out before it merges (to quarantine; requeue brings it back) */
  dequeue(pipeline: string, checkpoint: string): Promise<OperationResult>;
}

export interface ReplayOptions {
  /** replay on the configured engine even when it is not the one that made the version */
  anyEngine?: boolean;
}

export interface OperationResult {
  pipeline: string;
  operation: OperationKind;
  /** the version `current` points at afterwards */
  current_version: number | null;
  /** the version the operation made or acted on */
  version: number | null;
  /** one line for the operator */
  detail: string;
}

/** An operation's result, and what it set going after (notifiers, evaluator, retention): the CLI waits for it before exiting. */
export interface Done {
  result: OperationResult;
  after?: Promise<void>;
}

export type OperationKind = 'rollback' | 'revert' | 'pin' | 'unpin' | 'pause' | 'resume' | 'requeue' | 'dequeue';

/** Why an operation was refused; nothing changed. `code` maps to the HTTP status. */
export class OperationError extends Error {
  constructor(
    readonly code: 'not_found' | 'conflict' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'OperationError';
  }
}

export const HTTP_STATUS: Readonly<Record<OperationError['code'], number>> = {
  not_found: 404,
  conflict: 409,
  invalid: 400,
};

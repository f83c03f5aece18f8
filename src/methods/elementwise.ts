import type { MethodStep, StepUpdate, TaskSource, TensorJob } from './types.js';

/**
 * An element-wise update of one tensor: the new state from the base, the previous state (null at
 * t = 1) and the checkpoint, each whole and owned by the call (it may overwrite one and return it).
 */
export type ElementwiseUpdate = (
  base: Float32Array,
  prev: Float32Array | null,
  ckpt: Float32Array,
  job: TensorJob,
) => Float32Array;

/** MethodStep.updateTask for a method that combines base, previous state and checkpoint element by element. */
export function elementwise(update: ElementwiseUpdate): MethodStep['updateTask'] {
  return async (job: TensorJob, src: TaskSource): Promise<StepUpdate> => {
    const { base, prev, ckpt } = src.tensors();
    return { state: update(base, prev, ckpt, job) };
  };
}

/** A whole step of an element-wise method without analysis passes or scalars (task arithmetic, MagMax, ...). */
export function elementwiseStep(update: ElementwiseUpdate): MethodStep {
  return {
    analysisPasses: 0,
    updateTask: elementwise(update),
    finish: () => ({ scalars: {}, summary: {} }),
  };
}

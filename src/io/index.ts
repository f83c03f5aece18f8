/** Public surface of the safetensors I/O layer. */
export * from './types.js';
export {
  openModel,
  findCheckpointFiles,
  resolveCheckpoint,
  readIndex,
  createModelWriter,
  DEFAULT_MAX_SHARD_BYTES,
  INDEX_FILE,
  SINGLE_FILE,
  type CheckpointLayout,
  type ShardIndex,
  type ModelWriterOptions,
} from './model.js';
export { probeComplete, MAX_HEADER_BYTES, type Completeness } from './safetensors/header.js';
export { SafetensorsFile } from './safetensors/reader.js';
export { SafetensorsWriter, planHeader } from './safetensors/writer.js';
export { dtypeSize, decodeToF32, encodeFromF32, encodeBF16, encodeF16 } from './safetensors/dtype.js';

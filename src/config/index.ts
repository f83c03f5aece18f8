export { ConfigError, type ConfigIssue } from './errors.js';
export {
  loadConfig,
  parseConfig,
  readConfig,
  readConfigText,
  DB_FILE_NAME,
  API_TOKEN_FILE_NAME,
  type ApiConfig,
  type Config,
  type ConfigReading,
  type PipelineConfig,
} from './load.js';
export { pathIssues, type ConfigTargets, type PathScope, type PortTarget } from './paths.js';
export {
  PIPELINE_NAME,
  type CommandNotifierConfig,
  type EngineConfig,
  type EvaluatorConfig,
  type HttpNotifierConfig,
  type LogLevel,
  type NotifierConfig,
  type SseNotifierConfig,
  type TensorRulesConfig,
} from './schema.js';
export { parseParams } from './params.js';
export { formatBytes, parseBytes } from './units.js';

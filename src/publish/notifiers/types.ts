/** Notifier configuration as it appears in a pipeline's `notifiers:` list (snake_case, as in YAML). */

interface RetryOptions {
  /** per attempt (HTTP: per request); default 30 */
  timeout_s?: number;
  /** extra attempts after the first failure; default 3 */
  retries?: number;
  /** wait before retry k is backoff_s * 2^(k-1), capped at 60 s; default 1 */
  backoff_s?: number;
}

/** One HTTP request. url, headers and body are templated ({version} {path} {pipeline} {model_file}). */
export interface HttpStep {
  /** default POST */
  method?: string;
  url: string;
  headers?: Record<string, string>;
  /**
   * A string is templated as is (placeholders inside it are not escaped). An object or array is
   * templated leaf by leaf and sent as JSON with content-type application/json, so paths with
   * quotes or backslashes stay valid JSON: prefer it.
   */
  body?: string | Record<string, unknown> | unknown[];
}

/**
 * Serving check: after the notifier's request(s) or command succeed, this request is sent until its
 * response matches `expect` (at most `attempts` times, `interval_s` apart); only then is the
 * attempt ok. url, headers and body are templated like a step's.
 */
export interface VerifyConfig extends Omit<HttpStep, 'method'> {
  /** default GET */
  method?: string;
  /** per verify request; default 10 */
  timeout_s?: number;
  expect: VerifyExpect;
  /** wait between verify requests; default 2 */
  interval_s?: number;
  /** verify requests per notifier attempt before the attempt fails; default 10 */
  attempts?: number;
}

/** What the verify response must show: `equals` or `regex` (one of them). */
export interface VerifyExpect {
  /** dotted path into the JSON response (`weight_version`, `data.0.id`); absent: the whole body (trimmed) */
  json_path?: string;
  /** templated; the value must be exactly this (`"{version}"`) */
  equals?: string;
  /** templated, the values regex-escaped; the value must match it (`"/{version}$"`) */
  regex?: string;
}

interface ServingCheck {
  verify?: VerifyConfig;
}

/**
 * HTTP notifier: one request (`url`, `method`, `headers`, `body`) or a sequence (`steps`), for
 * servers that need several calls (vLLM: sleep, wake_up, reload). One attempt runs all steps in
 * order and stops at the first non-2xx; a retry starts again from the first step.
 */
export interface HttpNotifierConfig extends RetryOptions, ServingCheck, Partial<HttpStep> {
  type: 'http';
  name?: string;
  steps?: HttpStep[];
}

/** Command notifier: argv templated, run without a shell; success = exit code 0. */
export interface CommandNotifierConfig extends RetryOptions, ServingCheck {
  type: 'command';
  name?: string;
  argv: string[];
  /** extra environment; CMERGE_VERSION, CMERGE_PATH, CMERGE_PIPELINE, CMERGE_MODEL_FILE are always set */
  env?: Record<string, string>;
  cwd?: string;
}

/** Server-sent events on http://<host>:<port>/events (host default 127.0.0.1). */
export interface SseNotifierConfig {
  type: 'sse';
  name?: string;
  port: number;
  host?: string;
}

export type NotifierConfig = HttpNotifierConfig | CommandNotifierConfig | SseNotifierConfig;

/** What a notifier is told about a freshly published version. */
export interface NotifyContext {
  pipeline: string;
  version: number;
  /** absolute path of the version folder `<repository>/<pipeline>/<N>` */
  path: string;
  /** absolute path of model.safetensors (or of the shard index) inside it */
  modelFile: string;
}

/** One attempt of one notifier, for the store's notifications table. */
export interface NotifierOutcome {
  /** config name, or `<type>#<index>` */
  notifier: string;
  type: NotifierConfig['type'];
  /** 1-based */
  attempt: number;
  ok: boolean;
  /** HTTP status of the last request made in this attempt */
  status?: number;
  /** command exit code (null when killed by a signal) */
  exitCode?: number | null;
  /**
   * human-readable: request/response tail, stderr tail, error, clients reached; a serving check
   * adds `verify <METHOD> <url>: ...` (a mismatch before the last check is an outcome of its own)
   */
  detail: string;
  durationMs: number;
}

import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { ENGINE_CHOICES } from '../engine/index.js';
import { METHOD_NAMES, methods, type MethodName } from '../methods/registry.js';
import { isHubId } from '../util/hub-id.js';
import { parseBytes } from './units.js';

/**
 * The config file's schema. Every object is strict: an unknown key is an error, because a
 * misspelled optional key (`retension:`) would otherwise be ignored without a word. Paths are
 * still as written here; load.ts resolves them against the config file's folder.
 */

const nonEmpty = z.string().min(1, 'must not be empty');
const argv = z.array(nonEmpty).min(1, 'must name a program');

/** Safe as a folder name, not hidden (servers skip dot names), stable in URLs. */
export const PIPELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const pattern = nonEmpty;

const tensorRules = z.strictObject({
  /** tensors that take part in merging; the rest are copied from the base */
  include: z.array(pattern).default(['*']),
  /** tensors copied from the base even when include matches (e.g. task heads) */
  exclude: z.array(pattern).default([]),
  /** force these merged tensors to count as linear (still must be float 2-D) */
  linear_include: z.array(pattern).default([]),
  /** force these to count as non-linear; wins over linear_include */
  linear_exclude: z.array(pattern).default([]),
});

const bytes = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const n = parseBytes(v);
  if (n === null || n <= 0) {
    ctx.addIssue({ code: 'custom', message: `expected a byte size such as 5GB or 4GiB, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return n;
});

/** a byte size that may be 0 */
const bytesOrZero = z.union([z.literal(0), bytes]);

const seconds = z.number().positive();

/**
 * `engine: cuda` or `engine: {name: cuda, device: 0, max_memory: 8GiB, tf32: false}`, both
 * normalised to the object (EngineConfig). device, max_memory and tf32 apply to the cuda engine
 * (and to auto when it picks cuda); the GPU is shared with the model server, hence max_memory.
 */
const engineName = z.enum(ENGINE_CHOICES);
const engineObject = z.strictObject({
  name: engineName,
  /** CUDA device ordinal */
  device: z.number().int().min(0).default(0),
  /** device memory the engine may hold; a merge needing more runs on the CPU engine */
  max_memory: bytes.optional(),
  /** products in TF32 (faster, ~1e-3 relative error) */
  tf32: z.boolean().default(false),
});
const engine = z
  .union(
    [engineName.transform((name): z.output<typeof engineObject> => ({ name, device: 0, tf32: false })), engineObject],
    {
      error: (iss) =>
        iss.code === 'invalid_union'
          ? `expected ${engineName.options.join(' | ')}, or a mapping {name, device, max_memory, tf32}`
          : undefined,
    },
  )
  .prefault('auto');

/**
 * Notifiers: the shapes src/publish/notifiers/types.ts runs. URL, headers, body and argv are
 * templated there ({version} {path} {pipeline} {model_file}); here they are only checked.
 */
const retry = {
  /** per attempt (HTTP: per request) */
  timeout_s: seconds.default(30),
  /** extra attempts after the first failure */
  retries: z.number().int().min(0).default(3),
  /** wait before retry k is backoff_s * 2^(k-1), capped at 60 s */
  backoff_s: z.number().min(0).default(1),
};

const httpMethod = z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']);
const url = z.string().regex(/^https?:\/\//, 'expected an http:// or https:// URL');
/** a string is sent as is; an object or array is sent as JSON */
const body = z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]);
const headers = z.record(z.string(), z.string());

const httpStep = z.strictObject({
  method: httpMethod.default('POST'),
  url,
  headers: headers.optional(),
  body: body.optional(),
});

/** `{version}` and the other placeholders, replaced by sample values to check that a regex compiles */
const PLACEHOLDERS = /\{(version|path|pipeline|model_file)\}/g;

/**
 * Serving check (docs/notifiers.md): after the request(s) or command succeed, this request is sent
 * until its response matches `expect`; only then is the attempt ok. Templated like a step.
 */
const verify = z
  .strictObject({
    method: httpMethod.default('GET'),
    url,
    headers: headers.optional(),
    body: body.optional(),
    /** per verify request */
    timeout_s: seconds.default(10),
    expect: z
      .strictObject({
        /** dotted path into the JSON response (`weight_version`, `data.0.id`); absent: the whole body */
        json_path: z
          .string()
          .regex(/^[^.]+(\.[^.]+)*$/, 'expected a dotted path such as weight_version or data.0.id')
          .optional(),
        /** templated; the value must be exactly this, e.g. "{version}" */
        equals: z.union([z.string(), z.number()]).transform(String).optional(),
        /** templated (values regex-escaped); the value must match it */
        regex: z
          .string()
          .refine((r) => compiles(r.replace(PLACEHOLDERS, '0')), 'expected a valid regular expression')
          .optional(),
      })
      .superRefine((e, ctx) => {
        if ((e.equals === undefined) === (e.regex === undefined))
          ctx.addIssue({ code: 'custom', message: 'give equals or regex (one of them)' });
      }),
    /** wait between verify requests */
    interval_s: z.number().min(0).default(2),
    /** verify requests per notifier attempt before the attempt fails (and is retried) */
    attempts: z.number().int().min(1).default(10),
  })
  .superRefine((v, ctx) => {
    if (v.body !== undefined && (v.method === 'GET' || v.method === 'HEAD'))
      ctx.addIssue({ code: 'custom', path: ['body'], message: `a ${v.method} request cannot have a body` });
  });

function compiles(re: string): boolean {
  try {
    new RegExp(re);
    return true;
  } catch {
    return false;
  }
}

const httpNotifier = z
  .strictObject({
    type: z.literal('http'),
    /** recorded with each attempt; defaults to `http#<index>` */
    name: nonEmpty.optional(),
    method: httpMethod.default('POST'),
    url: url.optional(),
    headers: headers.optional(),
    body: body.optional(),
    /** several requests in order (vLLM: sleep, wake_up, reload_weights); instead of url */
    steps: z.array(httpStep).min(1).optional(),
    ...retry,
    verify: verify.optional(),
  })
  .superRefine((n, ctx) => {
    if ((n.url === undefined) === (n.steps === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: n.steps ? ['steps'] : ['url'],
        message: n.steps ? 'give url or steps, not both' : 'required (or steps)',
      });
    }
  });

const commandNotifier = z.strictObject({
  type: z.literal('command'),
  name: nonEmpty.optional(),
  /** run without a shell; argv[0] resolves against the config folder when it starts with ./ or ../ */
  argv,
  env: z.record(z.string(), z.string()).optional(),
  cwd: nonEmpty.optional(),
  ...retry,
  timeout_s: seconds.default(60),
  retries: z.number().int().min(0).default(0),
  verify: verify.optional(),
});

const sseNotifier = z.strictObject({
  type: z.literal('sse'),
  name: nonEmpty.optional(),
  /** serves http://<host>:<port>/events */
  port: z.number().int().min(1).max(65535),
  host: nonEmpty.default('127.0.0.1'),
});

const notifier = z.discriminatedUnion('type', [httpNotifier, commandNotifier, sseNotifier], {
  error: (iss) => (iss.code === 'invalid_union' ? 'expected type: http, command or sse' : undefined),
});

const pipelineCommon = {
  name: z
    .string()
    .regex(PIPELINE_NAME, 'expected 1-64 letters, digits, "_", "-" or "." not starting with "." (it names folders)')
    .refine((n) => n !== 'current', '"current" is reserved (the version symlink)'),
  /** a .safetensors file or a model folder */
  base: nonEmpty,
  /**
   * the base's Hugging Face Hub id (org/name) for the model card's `base_model`; absent: taken from
   * the base's files when they name one (docs/architecture.md#publication-and-hot-swap)
   */
  base_model_id: z
    .string()
    .refine((id) => isHubId(id), 'expected a Hub repo id such as org/name (letters, digits, _ . -)')
    .optional(),
  /** the watched folder */
  drop: nonEmpty,
  /** versions go to <repository>/<name>/<N>/ */
  repository: nonEmpty,
  /**
   * where merged checkpoints are moved, kept for revert and rollback (docs/operations.md); absent:
   * `<drop>.merged` beside the drop folder; false: they stay in the drop folder
   */
  archive: z.union([z.literal(false), nonEmpty]).optional(),
  tensors: tensorRules.prefault({}),
  retention: z
    .strictObject({
      /** keep the newest K versions (current and pinned ones are always kept) */
      keep: z.number().int().min(1).default(10),
    })
    .prefault({}),
  notifiers: z.array(notifier).default([]),
  evaluator: z
    .strictObject({
      /** given the version's path as last argument; prints {"task": score, ...} as JSON */
      argv,
      timeout_s: seconds.default(3600),
    })
    .optional(),
  /** merge states kept for rollback and revert (docs/operations.md) */
  state: z
    .strictObject({
      /** besides the current state, keep one every K steps of its lineage (0: only the current); a replay re-merges < K checkpoints */
      keep_every: z.number().int().min(0).default(5),
    })
    .prefault({}),
  /**
   * quality gate (docs/operations.md): a candidate that fails is not published and its checkpoint
   * is quarantined. Accuracy bounds need an evaluator; min_retention is data-free (ρ[t][i])
   */
  gate: z
    .strictObject({
      min_average_accuracy: z.number().optional(),
      min_task_accuracy: z.number().optional(),
      max_forgetting: z.number().min(0).optional(),
      min_retention: z.number().optional(),
    })
    .optional(),
  /** a checkpoint's size must stay unchanged this long before it is taken */
  settle_ms: z.number().int().min(0).default(500),
  intake: z
    .strictObject({
      /**
       * an entry that is not complete (shorter than its header says, a missing shard or adapter
       * file) is rejected once it has not changed for this long, counted from its last change,
       * across restarts (docs/architecture.md, intake). Absent: `cmerge daemon --incomplete-timeout`,
       * else 600
       */
      incomplete_timeout_s: seconds.optional(),
    })
    .prefault({}),
  /**
   * room on disk (docs/operations.md): before each merge, the file systems of the state and the
   * repository must have room for the next state generation and version (estimated from the last
   * ones, or from the base), else the pipeline pauses until they do
   */
  room: z
    .strictObject({
      /** false where the file system's free space says nothing (some network or quota-limited ones) */
      check: z.boolean().default(true),
      /** bytes to leave free beyond the estimate */
      reserve: bytesOrZero.default(64 * 2 ** 20),
      /** while paused for room, how often to look again */
      recheck_s: seconds.default(10),
    })
    .prefault({}),
  /** published models larger than this are sharded (index + shards) */
  max_shard_bytes: bytes.default(5e9),
  /** float dtype of the published model (any case); absent: each tensor keeps the base's */
  out_dtype: z
    .preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), z.enum(['F32', 'F16', 'BF16', 'F64']))
    .optional(),
  /** reject a checkpoint whose ‖τ‖ exceeds this multiple of the base model's norm */
  max_task_vector_norm_ratio: z.number().positive().default(10),
  engine,
};

/**
 * One object schema per method of the registry (src/methods/registry.ts), so `params` is checked
 * against the chosen method's own schema: its keys (unknown ones are rejected), types and defaults.
 */
function pipelineFor<M extends MethodName>(method: M) {
  return z.strictObject({
    ...pipelineCommon,
    method: z.literal(method),
    params: z.preprocess((v) => v ?? {}, methods[method].params),
  });
}

const [firstPipeline, ...otherPipelines] = METHOD_NAMES.map(pipelineFor);

export const pipelineSchema = z.discriminatedUnion('method', [firstPipeline, ...otherPipelines], {
  error: (iss) => (iss.code === 'invalid_union' ? `expected method: ${METHOD_NAMES.join(' | ')}` : undefined),
});

/**
 * The union above stops at an unknown or missing `method`, since the method picks the schema.
 * This checks the keys every method shares, so that load.ts can report a pipeline's other
 * problems (a typo'd `methd:` first of all) in the same run.
 */
export const pipelineWithoutMethod = z.strictObject({
  ...pipelineCommon,
  method: z.unknown().optional(),
  params: z.unknown().optional(),
});

export const configSchema = z
  .strictObject({
    /** SQLite database and merge states */
    state_dir: nonEmpty,
    pipelines: z.array(pipelineSchema).min(1, 'expected at least one pipeline'),
    /** merges running at once across pipelines (one at a time per pipeline regardless) */
    max_concurrent_merges: z.number().int().min(1).default(1),
    log_level: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),
    /** on SIGTERM/SIGINT: time to finish or abandon the running merge before exiting */
    shutdown_budget_s: seconds.default(60),
    /** BLAS threads and worker threads the daemon may use */
    threads: z
      .number()
      .int()
      .min(1)
      .default(() => availableParallelism()),
    /** Prometheus metrics at http://<metrics_host>:<metrics_port>/metrics (off when absent) */
    metrics_port: z.number().int().min(0).max(65535).optional(),
    metrics_host: nonEmpty.default('127.0.0.1'),
    /**
     * the daemon's HTTP API (off when absent; the unix socket <state_dir>/cmerge.sock is always
     * there). token_file defaults to <state_dir>/api-token (load.ts)
     */
    api: z
      .strictObject({
        port: z.number().int().min(0).max(65535),
        host: nonEmpty.default('127.0.0.1'),
        token_file: nonEmpty.optional(),
      })
      .optional(),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Map<string, number>();
    cfg.pipelines.forEach((p, i) => {
      const first = seen.get(p.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['pipelines', i, 'name'],
          message: `duplicate pipeline name "${p.name}" (also pipelines[${first}])`,
        });
      } else seen.set(p.name, i);
      const accuracyBounds = ['min_average_accuracy', 'min_task_accuracy', 'max_forgetting'] as const;
      const needsEvaluator = accuracyBounds.filter((k) => p.gate?.[k] !== undefined);
      if (needsEvaluator.length && !p.evaluator)
        ctx.addIssue({
          code: 'custom',
          path: ['pipelines', i, 'gate'],
          message: `${needsEvaluator.join(', ')} need an evaluator (pipelines[${i}].evaluator); min_retention does not`,
        });
    });
  });

export type RawConfig = z.output<typeof configSchema>;
export type TensorRulesConfig = z.output<typeof tensorRules>;
export type HttpNotifierConfig = z.output<typeof httpNotifier> & { name: string };
export type CommandNotifierConfig = z.output<typeof commandNotifier> & { name: string };
export type SseNotifierConfig = z.output<typeof sseNotifier> & { name: string };
export type NotifierConfig = HttpNotifierConfig | CommandNotifierConfig | SseNotifierConfig;
export type EvaluatorConfig = NonNullable<z.output<typeof pipelineSchema>['evaluator']>;
export type LogLevel = RawConfig['log_level'];
export type EngineConfig = z.output<typeof engine>;

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ConfigError,
  loadConfig,
  parseConfig,
  parseParams,
  type Config,
  type PathScope,
} from '../../src/config/index.js';
import { tensorRulesOf } from '../../src/daemon/runner-types.js';
import { classifier } from '../../src/merge/kinds.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

const MINIMAL = `state_dir: ./state
pipelines:
  - name: clip
    base: /models/clip-base
    drop: /srv/drop/clip
    repository: /srv/models
    method: opcm
    params: { alpha: 0.5 }
`;

function write(text: string): string {
  const file = join(tempDir(), 'cmerge.yaml');
  writeFileSync(file, text);
  return file;
}

/** Load, expecting a ConfigError; returns its message lines. */
function errorsOf(text: string): { file: string; lines: string[] } {
  const file = write(text);
  try {
    loadConfig(file);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.file, file);
    const lines = e.message.split('\n');
    for (const l of lines) assert.ok(l.startsWith(`${file}: `), `line does not name the file: ${l}`);
    return { file, lines };
  }
  assert.fail('config was accepted');
}

/** Replace the pipeline's `params:` line (or add lines) in the minimal config. */
const withPipeline = (extra: string, params = 'params: { alpha: 0.5 }') =>
  MINIMAL.replace('    params: { alpha: 0.5 }\n', `    ${params}\n${extra.replace(/^/gm, '    ')}\n`);

test('the issue example loads with resolved paths and defaults', () => {
  const file = write(MINIMAL);
  const c: Config = loadConfig(file);
  const dir = join(file, '..');
  assert.equal(c.file, file);
  assert.equal(c.state_dir, join(dir, 'state'));
  assert.equal(c.db_path, join(dir, 'state', 'cmerge.sqlite'));
  assert.equal(c.max_concurrent_merges, 1);
  assert.equal(c.shutdown_budget_s, 60);
  assert.equal(c.log_level, 'info');
  assert.ok(Number.isInteger(c.threads) && c.threads >= 1);
  const p = c.pipelines[0]!;
  assert.equal(p.name, 'clip');
  assert.equal(p.base, '/models/clip-base');
  assert.equal(p.method, 'opcm');
  assert.deepEqual(p.params, { alpha: 0.5 });
  assert.equal(p.settle_ms, 500);
  assert.deepEqual(p.engine, { name: 'auto', device: 0, tf32: false });
  assert.equal(p.max_shard_bytes, 5e9);
  assert.equal(p.max_task_vector_norm_ratio, 10);
  assert.deepEqual(p.retention, { keep: 10 });
  assert.deepEqual(p.tensors, { include: ['*'], exclude: [], linear_include: [], linear_exclude: [] });
  assert.deepEqual(p.notifiers, []);
  assert.equal(p.evaluator, undefined);
});

test('relative paths resolve against the config folder, not the working directory', () => {
  const file = write(MINIMAL.replace('/models/clip-base', '../models/base').replace('/srv/drop/clip', 'drop'));
  const dir = join(file, '..');
  const c = loadConfig(file);
  assert.equal(c.pipelines[0]!.base, join(dir, '..', 'models', 'base'));
  assert.equal(c.pipelines[0]!.drop, join(dir, 'drop'));
});

test('method defaults are filled from the reference', () => {
  const c = loadConfig(write(withPipeline('', 'params:').replace('method: opcm', 'method: dop')));
  assert.deepEqual(c.pipelines[0]!.params, {
    lr: 1e-4,
    num_steps: 200,
    mgda: true,
    ema: true,
    ema_beta: 0.999,
    alpha: 0.8,
    svd_epsilon: 0.99999,
    svd_proj_space: 'uv',
  });
  const t = loadConfig(
    write(
      MINIMAL.replace('method: opcm', 'method: ties').replace('params: { alpha: 0.5 }', 'params: { merge_func: mean }'),
    ),
  );
  assert.deepEqual(t.pipelines[0]!.params, { scaling_factor: 0.5, threshold: 20, merge_func: 'mean' });
  const w = loadConfig(
    write(MINIMAL.replace('method: opcm', 'method: weight_average').replace('params: { alpha: 0.5 }', '')),
  );
  assert.deepEqual(w.pipelines[0]!.params, {});
  assert.deepEqual(parseParams('task_arithmetic', undefined), { scaling_factor: 0.3 });
  assert.deepEqual(parseParams('magmax', {}), { scaling_factor: 0.5 });
});

test('every error names the file and the key path', () => {
  const cases: [string, RegExp][] = [
    [MINIMAL.replace('alpha: 0.5', 'alpha: "x"'), /: pipelines\[0\]\.params\.alpha: expected number, got string "x"$/],
    [
      MINIMAL.replace('alpha: 0.5', 'alpah: 0.5'),
      /: pipelines\[0\]\.params\.alpah: unknown key \(did you mean alpha\?\)$/,
    ],
    [
      MINIMAL.replace('alpha: 0.5', 'alpha: 1.5'),
      /: pipelines\[0\]\.params\.alpha: expected a number < 1, got number 1.5$/,
    ],
    [
      MINIMAL.replace('method: opcm', 'method: dop').replace('alpha: 0.5', 'svd_proj_space: w'),
      /: pipelines\[0\]\.params\.svd_proj_space: expected "uv" \| "u" \| "v"/,
    ],
    [
      MINIMAL.replace('method: opcm', 'method: ties').replace('alpha: 0.5', 'merge_func: prod'),
      /: pipelines\[0\]\.params\.merge_func: expected "sum" \| "mean" \| "max"/,
    ],
    [
      MINIMAL.replace('method: opcm', 'method: ties').replace('alpha: 0.5', 'threshold: "20"'),
      /: pipelines\[0\]\.params\.threshold: expected number/,
    ],
    [MINIMAL.replace('method: opcm', 'method: weight_average'), /: pipelines\[0\]\.params\.alpha: unknown key$/],
    [
      MINIMAL.replace('method: opcm', 'method: slerp'),
      /: pipelines\[0\]\.method: expected method: opcm \| dop \| task_arithmetic \| ties \| magmax \| weight_average, got string "slerp"$/,
    ],
    [MINIMAL.replace('    method: opcm\n', ''), /: pipelines\[0\]\.method: required/],
    [MINIMAL.replace('    base: /models/clip-base\n', ''), /: pipelines\[0\]\.base: required \(expected string\)$/],
    [MINIMAL.replace('state_dir: ./state\n', ''), /: state_dir: required \(expected string\)$/],
    [MINIMAL.replace('name: clip', 'name: ../etc'), /: pipelines\[0\]\.name: expected 1-64 letters/],
    [MINIMAL.replace('name: clip', 'name: .hidden'), /: pipelines\[0\]\.name: /],
    [MINIMAL.replace('name: clip', 'name: current'), /: pipelines\[0\]\.name: "current" is reserved/],
    [MINIMAL + 'max_concurrent_merges: 0\n', /: max_concurrent_merges: expected a number >= 1, got number 0$/],
    [MINIMAL + 'log_level: loud\n', /: log_level: expected "error" \| "warn"/],
    [MINIMAL + 'shutdown_budget_s: -1\n', /: shutdown_budget_s: expected a number > 0/],
    [MINIMAL + 'threads: 1.5\n', /: threads: /],
    [MINIMAL + 'pipeline: []\n', /: pipeline: unknown key \(did you mean pipelines\?\)$/],
    [MINIMAL.replace(/pipelines:[^]*/, 'pipelines: []\n'), /: pipelines: expected at least one pipeline/],
    [
      withPipeline('retention: { keep: 0 }'),
      /: pipelines\[0\]\.retention\.keep: expected a number >= 1, got number 0$/,
    ],
    [withPipeline('retension: { keep: 3 }'), /: pipelines\[0\]\.retension: unknown key \(did you mean retention\?\)$/],
    [
      withPipeline('tensors: { include: "*.weight" }'),
      /: pipelines\[0\]\.tensors\.include: expected array, got string/,
    ],
    [
      withPipeline('tensors: { linear_exclude: [1] }'),
      /: pipelines\[0\]\.tensors\.linear_exclude\[0\]: expected string, got number 1$/,
    ],
    [withPipeline('settle_ms: fast'), /: pipelines\[0\]\.settle_ms: expected number, got string "fast"$/],
    [
      withPipeline('intake: { incomplete_timeout_s: 0 }'),
      /: pipelines\[0\]\.intake\.incomplete_timeout_s: expected a number > 0/,
    ],
    [
      withPipeline('intake: { incomplete_timeout: 60 }'),
      /: pipelines\[0\]\.intake\.incomplete_timeout: unknown key \(did you mean incomplete_timeout_s\?\)$/,
    ],
    [
      withPipeline('base_model_id: /models/clip-base'),
      /: pipelines\[0\]\.base_model_id: expected a Hub repo id such as org\/name/,
    ],
    [withPipeline('max_shard_bytes: 5XB'), /: pipelines\[0\]\.max_shard_bytes: expected a byte size such as 5GB/],
    [
      withPipeline('max_task_vector_norm_ratio: 0'),
      /: pipelines\[0\]\.max_task_vector_norm_ratio: expected a number > 0/,
    ],
    [
      withPipeline('engine: gpu'),
      /: pipelines\[0\]\.engine: expected auto \| native \| portable \| cuda, or a mapping \{name, device, max_memory, tf32\}, got string "gpu"$/,
    ],
    [
      withPipeline('evaluator: { argv: [] }'),
      /: pipelines\[0\]\.evaluator\.argv: must name a program, got an empty list$/,
    ],
    [
      withPipeline('evaluator: { argv: [x], timeout: 5 }'),
      /: pipelines\[0\]\.evaluator\.timeout: unknown key \(did you mean timeout_s\?\)$/,
    ],
    [
      withPipeline('notifiers: [{ type: smtp }]'),
      /: pipelines\[0\]\.notifiers\[0\]\.type: expected type: http, command or sse, got string "smtp"$/,
    ],
    [
      withPipeline('notifiers: [{ type: http, url: "ftp://x" }]'),
      /: pipelines\[0\]\.notifiers\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/,
    ],
    [withPipeline('notifiers: [{ type: http }]'), /: pipelines\[0\]\.notifiers\[0\]\.url: required \(or steps\)$/],
    [
      withPipeline('notifiers: [{ type: http, url: "http://h", retries: -1 }]'),
      /: pipelines\[0\]\.notifiers\[0\]\.retries: expected a number >= 0/,
    ],
    [
      withPipeline('notifiers: [{ type: http, url: "http://h", method: FETCH }]'),
      /: pipelines\[0\]\.notifiers\[0\]\.method: expected "GET"/,
    ],
    [
      withPipeline('notifiers: [{ type: command, argv: [a], timeout_s: "1m" }]'),
      /: pipelines\[0\]\.notifiers\[0\]\.timeout_s: expected number, got string "1m"$/,
    ],
    [
      withPipeline('notifiers: [{ type: sse }]'),
      /: pipelines\[0\]\.notifiers\[0\]\.port: required \(expected number\)$/,
    ],
    [
      withPipeline('notifiers: [{ type: command, argv: [a], name: x }, { type: command, argv: [b], name: x }]'),
      /: pipelines\[0\]\.notifiers\[1\]\.name: duplicate notifier name "x"/,
    ],
  ];
  for (const [text, re] of cases) {
    const { lines } = errorsOf(text);
    assert.ok(
      lines.some((l) => re.test(l)),
      `no line matches ${re}:\n${lines.join('\n')}`,
    );
  }
});

test('pipeline names must be unique and drop folders distinct', () => {
  const second = `  - { name: clip, base: b, drop: other, repository: r, method: magmax }\n`;
  assert.match(
    errorsOf(MINIMAL + second).lines.join('\n'),
    /pipelines\[1\]\.name: duplicate pipeline name "clip" \(also pipelines\[0\]\)/,
  );
  const sameDrop = `  - { name: vit, base: b, drop: /srv/drop/clip, repository: r, method: magmax }\n`;
  assert.match(
    errorsOf(MINIMAL + sameDrop).lines.join('\n'),
    /pipelines\[1\]\.drop: same drop folder as pipelines\[0\]/,
  );
});

test('several problems are reported together, one line each', () => {
  const { lines } = errorsOf(MINIMAL.replace('alpha: 0.5', 'alpha: x, beta: 1') + 'log_level: loud\n');
  assert.equal(lines.length, 3, lines.join('\n'));
});

test('YAML syntax errors, empty files, missing files and duplicate keys name the file', () => {
  assert.match(errorsOf('state_dir: [unclosed\n').lines[0]!, /: line \d+, column \d+: /);
  assert.match(errorsOf('').lines[0]!, /expected a mapping of keys at the top level/);
  assert.match(errorsOf('- a\n- b\n').lines[0]!, /expected a mapping/);
  assert.match(errorsOf(MINIMAL + 'state_dir: again\n').lines[0]!, /line \d+, column \d+: .*(unique|duplicate)/i);
  const missing = join(tempDir(), 'nope.yaml');
  assert.throws(
    () => loadConfig(missing),
    (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${missing}: cannot read`),
  );
});

test('notifiers: defaults, names, relative argv[0]', () => {
  const file = write(
    withPipeline(`notifiers:
  - { type: http, url: "http://127.0.0.1:30000/update_weights_from_disk", body: { model_path: "{path}" } }
  - { type: http, name: vllm, steps: [{ url: "http://h/sleep" }, { method: PUT, url: "http://h/wake_up" }] }
  - { type: command, argv: [./notify.sh, "{version}"] }
  - { type: command, argv: [curl, -s] }
  - { type: sse, port: 9090 }
evaluator: { argv: [../eval.py] }`),
  );
  const dir = join(file, '..');
  const n = loadConfig(file).pipelines[0]!;
  assert.deepEqual(
    n.notifiers.map((x) => x.name),
    ['http#0', 'vllm', 'command#2', 'command#3', 'sse#4'],
  );
  const [http, steps, cmd, curl, sse] = n.notifiers;
  assert.ok(
    http?.type === 'http' &&
      steps?.type === 'http' &&
      cmd?.type === 'command' &&
      curl?.type === 'command' &&
      sse?.type === 'sse',
  );
  assert.equal(http.method, 'POST');
  assert.equal(http.timeout_s, 30);
  assert.equal(http.retries, 3);
  assert.deepEqual(http.body, { model_path: '{path}' });
  assert.equal(steps.steps?.[0]?.method, 'POST');
  assert.equal(steps.steps?.[1]?.method, 'PUT');
  assert.deepEqual(cmd.argv, [join(dir, 'notify.sh'), '{version}']);
  assert.deepEqual(curl.argv, ['curl', '-s']);
  assert.equal(cmd.retries, 0);
  assert.equal(sse.host, '127.0.0.1');
  assert.deepEqual(n.evaluator, { argv: [join(dir, '..', 'eval.py')], timeout_s: 3600 });
});

test('byte sizes accept units', () => {
  for (const [v, n] of [
    ['4GiB', 4 * 2 ** 30],
    ['500MB', 5e8],
    ['123', 123],
    [1024, 1024],
  ] as const) {
    assert.equal(loadConfig(write(withPipeline(`max_shard_bytes: ${v}`))).pipelines[0]!.max_shard_bytes, n);
  }
});

test('tensor rules: include/exclude and linear overrides', () => {
  const c = loadConfig(
    write(
      withPipeline(`tensors:
  exclude: ["classifier.*"]
  linear_include: ["*.patch_embedding.weight"]
  linear_exclude: ["*.{q,k}_proj.weight", "lm_head.weight"]`),
    ),
  );
  // the daemon hands these to the merge runner's classifier: check them through it
  const kindOf = (t: Config['pipelines'][number]['tensors']) => {
    const cls = classifier(tensorRulesOf(t));
    return (name: string, shape = [4, 4]) => cls({ name, dtype: 'F32', shape, size: 16, byteLength: 64 });
  };
  const kind = kindOf(c.pipelines[0]!.tensors);
  assert.equal(kind('encoder.layers.0.mlp.fc1.weight'), 'linear');
  assert.equal(kind('classifier.weight'), 'copy');
  assert.equal(kind('vision.patch_embedding.weight'), 'linear'); // an embedding by default, forced linear
  assert.equal(kind('encoder.layers.3.self_attn.q_proj.weight'), 'other');
  assert.equal(kind('encoder.layers.3.self_attn.v_proj.weight'), 'linear');
  assert.equal(kind('lm_head.weight'), 'other');
  assert.equal(kind('norm.weight', [4]), 'other');
  const only = kindOf({ include: ['text.*'], exclude: [], linear_include: [], linear_exclude: [] });
  assert.equal(only('text.layers.1.weight'), 'linear');
  assert.equal(only('vision.layers.1.weight'), 'copy');
});

test('config/cmerge.example.yaml validates and documents every method', () => {
  const c = loadConfig(join(repoRoot, 'config', 'cmerge.example.yaml'));
  assert.ok(c.pipelines.length >= 1);
  assert.equal(c.pipelines[0]!.method, 'opcm');
  assert.ok(c.pipelines[0]!.notifiers.length >= 2);
  assert.ok(c.pipelines[0]!.evaluator);
  assert.equal(c.pipelines[0]!.intake.incomplete_timeout_s, 600);
  assert.equal(c.pipelines[0]!.base_model_id, 'openai/clip-vit-base-patch32');
  assert.equal(c.pipelines[0]!.archive, '/srv/drop/clip.merged');
  assert.deepEqual(c.pipelines[0]!.room, { check: true, reserve: 64 * 2 ** 20, recheck_s: 10 });
});

test('archive: beside the drop folder when absent, resolved against the config folder, false keeps files in place', () => {
  const at = (extra: string) =>
    parseConfig(MINIMAL.replace('method: opcm', `method: opcm\n${extra}`), '/etc/cmerge/c.yaml').pipelines[0]!;
  assert.equal(at('').archive, `${at('').drop}.merged`);
  assert.equal(at('    archive: merged').archive, '/etc/cmerge/merged');
  assert.equal(at('    archive: false').archive, null);
});

test('parseParams reports like a config file', () => {
  assert.throws(
    () => parseParams('opcm', { alpha: 'x' }, '--params'),
    (e: unknown) => e instanceof ConfigError && e.message === '--params: alpha: expected number, got string "x"',
  );
});

test('a pipeline without a known method still has its other keys checked, a typo named with the nearest key', () => {
  const { lines } = errorsOf(MINIMAL.replace('method: opcm', 'methd: opcm').replace('repository:', 'repo:'));
  const at = (path: string) => lines.findIndex((l) => l.includes(`: ${path}: `));
  assert.match(lines[at('pipelines[0].methd')]!, /: unknown key \(did you mean method\?\)$/);
  assert.match(lines[at('pipelines[0].repo')]!, /: unknown key$/, 'too far from repository for a guess');
  assert.match(lines[at('pipelines[0].repository')]!, /: required \(expected string\)$/);
  assert.match(lines[at('pipelines[0].method')]!, /: required \(expected method: opcm \|/);
  assert.equal(lines.length, 4, lines.join('\n'));
  assert.match(
    errorsOf(MINIMAL.replace('method: opcm', 'method: ties').replace('alpha: 0.5', 'treshold: 5')).lines.join('\n'),
    /pipelines\[0\]\.params\.treshold: unknown key \(did you mean threshold\?\)/,
  );
});

test('paths: each scope checks what its commands use, naming the key and the path', () => {
  const dir = tempDir('cmerge-config-paths-');
  writeFileSync(join(dir, 'base.safetensors'), '');
  writeFileSync(join(dir, 'file'), '');
  writeFileSync(join(dir, 'notify.sh'), '#!/bin/sh\n', { mode: 0o644 });
  mkdirSync(join(dir, 'models'));
  const file = join(dir, 'cmerge.yaml');
  const issues = (text: string, scope: PathScope) => {
    writeFileSync(file, text);
    try {
      loadConfig(file, { paths: scope });
      return [];
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.issues.map((i) => `${i.path}: ${i.message}`);
    }
  };
  const good = MINIMAL.replace('/models/clip-base', './base.safetensors')
    .replace('/srv/drop/clip', './drop/clip')
    .replace('/srv/models', './models');
  assert.deepEqual(issues(good, 'daemon'), []);
  assert.deepEqual(issues(good.replace('./base.safetensors', './nope'), 'inspect'), [
    `pipelines[0].base: ${join(dir, 'nope')} does not exist`,
  ]);
  const bad = withPipeline(
    `notifiers: [{ type: command, argv: [./notify.sh], cwd: ./nowhere }]
evaluator: { argv: [./eval.py] }`,
  )
    .replace('/models/clip-base', './base.safetensors')
    .replace('/srv/drop/clip', './file/drop')
    .replace('/srv/models', './models')
    .replace('./state', './file');
  // the inspection commands only need the bases; the daemon needs all of it
  assert.deepEqual(issues(bad, 'inspect'), []);
  assert.deepEqual(issues(bad, 'daemon'), [
    `state_dir: ${join(dir, 'file')} is not a folder`,
    `pipelines[0].drop: ${join(dir, 'file', 'drop')} cannot be created: ${join(dir, 'file')} is not a folder`,
    `pipelines[0].evaluator.argv[0]: ${join(dir, 'eval.py')} does not exist`,
    `pipelines[0].notifiers[0].argv[0]: ${join(dir, 'notify.sh')} is not executable`,
    `pipelines[0].notifiers[0].cwd: ${join(dir, 'nowhere')} does not exist`,
  ]);
  // a schema error does not hide a missing path
  assert.deepEqual(issues(good.replace('./base.safetensors', './nope') + 'log_level: loud\n', 'inspect').length, 2);
});

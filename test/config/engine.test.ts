import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, type EngineConfig } from '../../src/config/index.js';
import { tempDir } from '../helpers/paths.js';

/** A pipeline's `engine`: a name, or {name, device, max_memory, tf32}; both become EngineConfig. */
const config = (engine: string) => `state_dir: ./state
pipelines:
  - name: clip
    base: /models/clip-base
    drop: /srv/drop/clip
    repository: /srv/models
    method: opcm
${engine.replace(/^/gm, '    ')}
`;

function load(engine: string): { file: string; engine?: EngineConfig; lines?: string[] } {
  const file = join(tempDir(), 'cmerge.yaml');
  writeFileSync(file, config(engine));
  try {
    return { file, engine: loadConfig(file).pipelines[0]!.engine };
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return { file, lines: e.message.split('\n') };
  }
}

test('engine: the string forms and the default', () => {
  assert.deepEqual(load('').engine, { name: 'auto', device: 0, tf32: false });
  for (const name of ['auto', 'native', 'portable', 'cuda'] as const) {
    assert.deepEqual(load(`engine: ${name}`).engine, { name, device: 0, tf32: false });
  }
});

test('engine: the object form, with defaults and byte units', () => {
  assert.deepEqual(load('engine: {name: cuda}').engine, { name: 'cuda', device: 0, tf32: false });
  assert.deepEqual(load('engine:\n  name: cuda\n  device: 1\n  max_memory: 8GiB\n  tf32: true').engine, {
    name: 'cuda',
    device: 1,
    max_memory: 8 * 2 ** 30,
    tf32: true,
  });
  assert.deepEqual(load('engine: {name: auto, max_memory: 500MB}').engine, {
    name: 'auto',
    device: 0,
    max_memory: 5e8,
    tf32: false,
  });
  assert.equal(load('engine: {name: cuda, max_memory: 1073741824}').engine!.max_memory, 2 ** 30);
});

test('engine: errors name the file and the key', () => {
  const cases: [string, RegExp][] = [
    [
      'engine: gpu',
      /: pipelines\[0\]\.engine: expected auto \| native \| portable \| cuda, or a mapping \{name, device, max_memory, tf32\}, got string "gpu"$/,
    ],
    ['engine: 3', /: pipelines\[0\]\.engine: expected auto .*, got number 3$/],
    ['engine: [cuda]', /: pipelines\[0\]\.engine: expected auto .*, got a list$/],
    [
      'engine: {name: gpu}',
      /: pipelines\[0\]\.engine\.name: expected "auto" \| "native" \| "portable" \| "cuda", got string "gpu"$/,
    ],
    ['engine: {device: 1}', /: pipelines\[0\]\.engine\.name: expected "auto"/],
    ['engine: {name: cuda, device: -1}', /: pipelines\[0\]\.engine\.device: expected a number >= 0, got number -1$/],
    ['engine: {name: cuda, device: 0.5}', /: pipelines\[0\]\.engine\.device: /],
    [
      'engine: {name: cuda, max_memory: 8XB}',
      /: pipelines\[0\]\.engine\.max_memory: expected a byte size such as 5GB or 4GiB, got "8XB"$/,
    ],
    ['engine: {name: cuda, max_memory: 0}', /: pipelines\[0\]\.engine\.max_memory: expected a number > 0/],
    ['engine: {name: cuda, tf32: yes}', /: pipelines\[0\]\.engine\.tf32: expected boolean, got string "yes"$/],
    ['engine: {name: cuda, memory: 8GiB}', /: pipelines\[0\]\.engine\.memory: unknown key$/],
  ];
  for (const [text, re] of cases) {
    const { file, lines } = load(text);
    assert.ok(lines, `${text} was accepted`);
    for (const l of lines) assert.ok(l.startsWith(`${file}: `), `line does not name the file: ${l}`);
    assert.ok(
      lines.some((l) => re.test(l)),
      `${text}: no line matches ${re}:\n${lines.join('\n')}`,
    );
  }
});

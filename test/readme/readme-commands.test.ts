/**
 * Every command the README writes without a placeholder runs as written in a fresh clone after its
 * set-up (issue 15, point 13): `cmerge` is not on the PATH after `npm ci`, so the README runs it as
 * `npx cmerge`, and its examples use the files `npx cmerge demo` leaves in `demo/`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from '../helpers/paths.js';

interface ReadmeCommand {
  line: number;
  text: string;
}

/** Lines of fenced `sh` blocks (a trailing `\` joins the next line) and inline code starting with `cmerge`/`npx cmerge`. */
function readmeCommands(markdown: string): ReadmeCommand[] {
  const found: ReadmeCommand[] = [];
  let fence: string | null = null;
  let pending = '';
  markdown.split('\n').forEach((raw, i) => {
    const line = i + 1;
    const open = /^```(\w*)/.exec(raw);
    if (open) {
      fence = fence === null ? open[1]! : null;
      return;
    }
    if (fence === 'sh') {
      const text = pending + raw.trim();
      pending = text.endsWith('\\') ? text.slice(0, -1) : '';
      if (!pending && text && !text.startsWith('#')) found.push({ line, text });
      return;
    }
    if (fence !== null) return;
    for (const [, code] of raw.matchAll(/`([^`]+)`/g))
      if (/^(npx )?cmerge /.test(code!)) found.push({ line, text: code! });
  });
  return found;
}

/**
 * Why a command is not run here, or null to run it:
 * - set-up: the README's two set-up commands (apt-get, npm ci; the second runs this suite). Their
 *   demo part runs first, below.
 * - name: `cmerge status` in a sentence names a subcommand; it is no command line.
 * - placeholder: `<...>`, `[...]`, `a|b`, `...`; the README's metavariables f (a config file),
 *   p (a pipeline) and n (a version) as words; and absolute paths, which stand for the user's own
 *   files (`/etc/cmerge/cmerge.yaml`): a fresh clone has none of them.
 */
function skipReason(text: string): string | null {
  if (text.startsWith('apt-get ')) return 'set-up';
  if (/^cmerge [a-z-]+$/.test(text)) return 'name';
  if (/[<>[\]|…]|\.\.\./.test(text)) return 'placeholder';
  if (text.split(/\s+/).some((w) => ['f', 'p', 'n'].includes(w) || w.startsWith('/'))) return 'placeholder';
  return null;
}

/**
 * A fresh clone after `npm ci`, as npx sees it: its package.json (the `cmerge` bin), bin/, the
 * compiled dist/ and node_modules/. Nothing of the repository's own demo/ comes along.
 */
function freshClone(): string {
  const dir = tempDir('cmerge-readme-');
  copyFileSync(join(repoRoot, 'package.json'), join(dir, 'package.json'));
  for (const entry of ['bin', 'dist', 'node_modules']) symlinkSync(join(repoRoot, entry), join(dir, entry));
  return dir;
}

/** Runs one README command line through the shell, as a reader pastes it. */
function run(text: string, cwd: string): void {
  const r = spawnSync('sh', ['-c', text], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    env: {
      ...process.env,
      // npx must find the clone's own bin: offline, a `cmerge` from the registry fails instead of installing
      npm_config_offline: 'true',
      // npx links the clone into its cache; its own cache keeps ~/.npm/_npx free of test links, and
      // no scripts: `prepare` would rebuild dist/, which npm ci has built and this test runs from
      npm_config_cache: join(cwd, '.npm-cache'),
      npm_config_ignore_scripts: 'true',
    },
  });
  assert.equal(r.status, 0, `${text}\n${r.stderr}${r.stdout}`);
}

test('every README command without a placeholder runs as written after the set-up, on the files the demo made', (t) => {
  const commands = readmeCommands(readFileSync(join(repoRoot, 'README.md'), 'utf8'));
  const setup = commands.filter((c) => skipReason(c.text) === 'set-up');
  assert.equal(setup.length, 2, 'exactly two set-up commands');
  const steps = setup[0]!.text.split(' && ');
  const demo = steps.slice(steps.indexOf('npm ci') + 1).join(' && ');
  assert.match(demo, /^npx cmerge demo\b/, 'the first set-up command ends by running the demo');

  const runnable = commands.filter((c) => skipReason(c.text) === null);
  for (const c of commands) t.diagnostic(`README.md:${c.line} ${skipReason(c.text) ?? 'run'}: ${c.text}`);
  for (const c of runnable)
    assert.match(c.text, /^npx cmerge /, `README.md:${c.line}: \`cmerge\` is not on the PATH after npm ci`);
  const subcommands = new Set(runnable.map((c) => c.text.split(/\s+/)[2]));
  for (const sub of ['merge', 'status', 'history', 'show', 'verify', 'report'])
    assert.ok(subcommands.has(sub), `the README runs a \`npx cmerge ${sub}\` example: ${[...subcommands].join(', ')}`);

  const clone = freshClone();
  // twice: running the set-up again starts demo/ afresh, so the examples run again as written
  for (let round = 0; round < 2; round++) {
    run(demo, clone);
    assert.ok(existsSync(join(clone, 'demo', 'cmerge.yaml')), 'the demo leaves its config in demo/');
    assert.equal(existsSync(join(clone, 'demo', 'report.html')), false, 'a new demo run clears the last one');
    for (const c of runnable) run(c.text, clone);
    assert.ok(existsSync(join(clone, 'demo', 'report.html')), 'the report example wrote its file');
  }
});

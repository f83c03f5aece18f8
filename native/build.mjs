#!/usr/bin/env node
// The package's install script: builds the native addons with node-gyp, one target at a time.
// A target that fails (no compiler, no OpenBLAS/LAPACKE, ...) costs one warning line and nothing
// else: install still succeeds and cmerge uses its portable code instead.
//
//   CMERGE_SKIP_NATIVE=1       build nothing
//   CMERGE_BLAS_LIBS="..."     linker flags for cmerge_linalg (default "-lopenblas -llapacke")
//   CMERGE_NATIVE_VERBOSE=1    stream node-gyp's output instead of only logging it
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, 'build');
const targets = [
  {
    name: 'cmerge_linalg',
    without: 'the portable TypeScript engine is used (much slower)',
    needs: 'libopenblas-dev and liblapacke-dev',
  },
  {
    name: 'cmerge_cuda',
    without: 'the cuda engine is unavailable (CPU engines only)',
    needs: 'a C++ toolchain (no CUDA: the libraries are opened at run time)',
  },
  {
    name: 'cmerge_sys',
    without: 'systemd notifications go through the systemd-notify command',
    needs: 'a C++ toolchain',
  },
];
const verbose = process.env.CMERGE_NATIVE_VERBOSE === '1';

if (process.env.CMERGE_SKIP_NATIVE === '1') {
  console.warn('cmerge: CMERGE_SKIP_NATIVE=1, native addons not built');
  process.exit(0);
}

// npm hands its bundled node-gyp to install scripts; outside npm, use that same copy next to node.
function nodeGyp() {
  if (process.env.npm_config_node_gyp) return [process.execPath, process.env.npm_config_node_gyp];
  const bundled = join(
    dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  if (existsSync(bundled)) return [process.execPath, bundled];
  return ['npx', '--yes', 'node-gyp'];
}

// Headers installed with node (e.g. /usr/include/node) make the build work offline; node-gyp
// would otherwise download them. npm passes its nodedir setting as npm_config_nodedir.
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

const [gypCmd, ...gypArgs] = nodeGyp();
function run(args) {
  const r = spawnSync(gypCmd, [...gypArgs, ...nodedirArgs(), ...args], {
    cwd: here,
    encoding: 'utf8',
    stdio: verbose ? 'inherit' : 'pipe',
    maxBuffer: 64 << 20,
  });
  const output = `$ node-gyp ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) + '\n' : ''}`;
  return { ok: r.status === 0, output };
}

// What went wrong, in a few words, for the one-line warning.
function reason(output) {
  const patterns = [/cannot find -l[\w.+-]+/, /fatal error: .*/, /gyp ERR! stack Error: (.*)/, /\berror: .*/];
  for (const p of patterns) {
    const m = output.match(p);
    if (m) return (m[1] ?? m[0]).trim().slice(0, 200);
  }
  return 'see the log';
}

function warn(target, why, log) {
  console.warn(
    `cmerge: warning: native addon ${target.name} not built (${why}); ${target.without}. ` +
      `Needs ${target.needs}; retry with "npm rebuild cmerge". Log: ${relative(process.cwd(), log)}`,
  );
}

const blasLibs = process.env.CMERGE_BLAS_LIBS;
// clean first: a stale .node from an earlier build must not survive a failed one.
const clean = run(['clean']);
const conf = run(['configure', '--', ...(blasLibs ? [`-Dblas_libs=${blasLibs}`] : [])]);
mkdirSync(buildDir, { recursive: true });
if (!conf.ok) {
  const log = join(buildDir, 'configure.log');
  writeFileSync(log, clean.output + '\n' + conf.output);
  for (const t of targets) warn(t, `node-gyp configure failed: ${reason(conf.output)}`, log);
  process.exit(0);
}
for (const t of targets) {
  const b = run(['build', t.name]);
  const log = join(buildDir, `${t.name}.log`);
  writeFileSync(log, conf.output + '\n' + b.output);
  if (!b.ok) {
    rmSync(join(buildDir, 'Release', `${t.name}.node`), { force: true });
    warn(t, reason(b.output), log);
  }
}
process.exit(0);

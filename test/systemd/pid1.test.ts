/**
 * systemd/cmerge.service run by a real systemd as PID 1: a private systemd (PID and mount
 * namespaces, its own /run and /tmp) boots next to the host's init, loads the shipped unit plus a
 * drop-in that points it at this checkout and a test folder; then `systemctl start` waits for the
 * daemon's READY=1, a dropped checkpoint is published by the sandboxed service as `nobody`,
 * `systemctl reload` (SIGHUP) adds a pipeline that then publishes too, and `systemctl stop` ends
 * it cleanly.
 *
 * The private systemd sees only the units written here (SYSTEMD_UNIT_PATH): booting the host's
 * sysinit.target would run the host's tmpfiles, sysctl, udev and sysusers on the shared
 * filesystem (its tmpfiles rules empty /tmp). Its /tmp is a fresh tmpfs in any case.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { writeDemoModels } from '../../src/demo/synth.js';
import { cliPath, repoRoot } from '../helpers/paths.js';

const SYSTEMD = '/lib/systemd/systemd';
const NOBODY = 65534;

function whyNot(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync(SYSTEMD)) return `${SYSTEMD} is missing (CI installs the systemd package)`;
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount', '--mount-proc', 'true'], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot make PID and mount namespaces here: ${(r.error?.message ?? r.stderr).trim()}`;
  return null;
}

let init: ChildProcess | null = null;
let initPid = 0;
const root = join('/var/lib', `cmerge-pid1-test-${process.pid}`);
after(() => {
  // SIGKILL to a PID namespace's init ends everything in it
  if (initPid) process.kill(initPid, 'SIGKILL');
  init?.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** a command inside the private systemd's namespaces */
function ns(args: string[], input?: string) {
  return spawnSync('nsenter', ['-t', String(initPid), '-m', '-p', ...args], { encoding: 'utf8', input });
}

function show(...props: string[]): Record<string, string> {
  const r = ns(['systemctl', 'show', 'cmerge.service', ...props.map((p) => `--property=${p}`)]);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

async function until(what: string, cond: () => boolean, ms: number, detail = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}\n${detail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** the PID (in our namespace) of a child of `parent`, or 0: unshare --fork's child is the private init */
function childOf(parent: number): number {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) return Number(e);
    } catch {
      // gone meanwhile
    }
  }
  return 0;
}

/** what systemd says of the unit, for failure messages (there is no journal in the private system) */
const unitStatus = () => ns(['systemctl', 'status', '--no-pager', 'cmerge.service']).stdout;

/** Boots the private systemd; the checkout stays visible when it lives under /tmp. */
function bootScript(units: string): string {
  const keep = /^\/tmp\//.test(repoRoot) ? repoRoot : null;
  return [
    'set -e',
    'mount -t tmpfs tmpfs /run',
    ...(keep ? [`mkdir -p /run/checkout && mount --bind '${keep}' /run/checkout`] : []),
    'mount -t tmpfs tmpfs /tmp',
    ...(keep ? [`mkdir -p '${keep}' && mount --bind /run/checkout '${keep}'`] : []),
    `exec env container=cmerge-test SYSTEMD_UNIT_PATH='${units}' ${SYSTEMD} --system --unit=cmerge-idle.target`,
  ].join('\n');
}

/** Stand-ins for the targets the unit and its default dependencies name; nothing else exists. */
function writeUnits(dir: string, dropIn: string): void {
  mkdirSync(join(dir, 'cmerge.service.d'), { recursive: true });
  for (const t of ['cmerge-idle', 'sysinit', 'basic', 'shutdown', 'network-online', 'local-fs', 'multi-user']) {
    writeFileSync(join(dir, `${t}.target`), `[Unit]\nDescription=${t} (empty, for the test)\n`);
  }
  copyFileSync(join(repoRoot, 'systemd', 'cmerge.service'), join(dir, 'cmerge.service'));
  writeFileSync(join(dir, 'cmerge.service.d', 'test.conf'), dropIn);
}

test('the shipped unit under a real systemd PID 1: start (READY), publish, reload (SIGHUP), stop', async (t) => {
  const skip = whyNot();
  if (skip) return t.skip(skip);

  // the test folder: models, drop, repository, state, config; owned by the service's user
  const models = writeDemoModels(join(root, 'models'), 1, { d: 48, layers: 1, seed: 9 });
  for (const d of ['drop', 'drop2', 'repo']) mkdirSync(join(root, d));
  const config = join(root, 'cmerge.yaml');
  const pipeline = (name: string, drop: string) => ({
    name,
    base: models.base,
    drop: join(root, drop),
    repository: join(root, 'repo'),
    method: 'opcm',
    settle_ms: 300,
  });
  writeFileSync(config, stringify({ state_dir: join(root, 'state'), pipelines: [pipeline('clip', 'drop')] }));
  spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, root]);

  // The drop-in a user would write with `systemctl edit cmerge`: this checkout, this folder.
  const asNobody = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, cliPath, '--version']).status === 0;
  const hidden = (p: string) => /^\/(root|home|run\/user)(\/|$)/.test(p);
  const private_ = (p: string) => /^\/(tmp|var\/tmp)(\/|$)/.test(p);
  const relaxed = [
    ...(!asNobody ? ['User=root', 'Group=root'] : ['User=nobody', 'Group=nogroup']),
    ...([repoRoot, process.execPath].some(hidden) ? ['ProtectHome=no'] : []),
    ...([repoRoot, process.execPath].some(private_) ? ['PrivateTmp=no'] : []),
  ];
  t.diagnostic(`drop-in for this checkout (${repoRoot}): ${relaxed.join(' ')}`);
  const dropIn = [
    '[Service]',
    'ExecStart=',
    `ExecStart=${process.execPath} ${cliPath} daemon --config ${config}`,
    'StateDirectory=',
    `StateDirectory=${basename(root)}`,
    'ReadWritePaths=',
    ...relaxed,
    '',
  ].join('\n');

  const units = join(root, 'units');
  writeUnits(units, dropIn);
  init = spawn(
    'unshare',
    ['--pid', '--fork', '--mount', '--mount-proc', '--propagation', 'private', 'sh', '-c', bootScript(units)],
    { stdio: 'ignore' },
  );
  await until(
    'the private systemd to start',
    () => {
      initPid = childOf(init!.pid!);
      return initPid > 0 && /running|degraded/.test(ns(['systemctl', 'is-system-running']).stdout);
    },
    30_000,
    () => ns(['systemctl', 'is-system-running']).stdout,
  );
  assert.equal(
    ns(['systemctl', 'show', '--property=UnitPath', '--value']).stdout.trim(),
    units,
    'the private systemd sees only the test units',
  );

  // Type=notify: `systemctl start` returns once the daemon sent READY=1
  const start = ns(['systemctl', 'start', 'cmerge.service']);
  assert.equal(start.status, 0, `systemctl start failed: ${start.stderr}\n${unitStatus()}`);
  let s = show('ActiveState', 'SubState', 'StatusText', 'MainPID', 'User');
  t.diagnostic(`after start: ${JSON.stringify(s)}`);
  assert.equal(s.ActiveState, 'active');
  assert.equal(s.SubState, 'running');
  assert.ok(s.StatusText.length > 0, 'STATUS= reached systemd');

  // a producer drops a checkpoint: the sandboxed service publishes version 1
  const publish = async (drop: string, name: string) => {
    const part = join(root, drop, '.task_0.safetensors.part');
    copyFileSync(models.tasks[0], part);
    chownSync(part, NOBODY, NOBODY);
    renameSync(part, join(root, drop, 'task_0.safetensors'));
    const current = join(root, 'repo', name, 'current');
    await until(`version 1 of ${name}`, () => existsSync(current) && readlinkSync(current) === '1', 30_000, unitStatus);
    assert.ok(readdirSync(join(root, 'repo', name, '1')).includes('manifest.json'));
  };
  await publish('drop', 'clip');
  assert.equal(show('MainPID').MainPID, s.MainPID, 'the same process (no restart)');

  // ExecReload sends SIGHUP: the daemon reads the config again, here with a second pipeline
  writeFileSync(
    config,
    stringify({ state_dir: join(root, 'state'), pipelines: [pipeline('clip', 'drop'), pipeline('second', 'drop2')] }),
  );
  assert.equal(ns(['systemctl', 'reload', 'cmerge.service']).status, 0);
  await until('active again after the reload', () => show('SubState').SubState === 'running', 10_000);
  await publish('drop2', 'second');

  const stop = ns(['systemctl', 'stop', 'cmerge.service']);
  assert.equal(stop.status, 0, stop.stderr);
  s = show('ActiveState', 'Result', 'ExecMainStatus', 'NRestarts');
  t.diagnostic(`after stop: ${JSON.stringify(s)}`);
  assert.equal(s.ActiveState, 'inactive');
  assert.equal(s.Result, 'success');
  assert.equal(s.ExecMainStatus, '0');
  assert.equal(s.NRestarts, '0');
});

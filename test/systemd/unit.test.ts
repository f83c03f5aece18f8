/**
 * systemd/cmerge.service, checked by systemd itself (`systemd-analyze verify`) and for the
 * settings the daemon's contract depends on (notify, watchdog, stop budget, sandbox).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath, repoRoot, tempDir } from '../helpers/paths.js';

const unitPath = join(repoRoot, 'systemd', 'cmerge.service');
const unitText = readFileSync(unitPath, 'utf8');

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const skip = analyze.error
  ? `systemd-analyze is not installed (${(analyze.error as NodeJS.ErrnoException).code}); CI installs the systemd package`
  : false;

/** systemd-analyze verify on a unit file; lines about other units (dependencies) are dropped. */
function verify(dir: string, text: string): { status: number | null; ours: string[] } {
  const file = join(dir, 'cmerge.service');
  writeFileSync(file, text);
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
  const ours = r.stderr.split('\n').filter((l) => l.includes('cmerge.service'));
  return { status: r.status, ours };
}

/** The unit as installed would run this checkout: real node, real bin/cmerge.js, real config file. */
function localized(text: string, dir: string): string {
  const config = join(dir, 'cmerge.yaml');
  writeFileSync(config, readFileSync(join(repoRoot, 'config', 'cmerge.example.yaml')));
  const exec = `ExecStart=${process.execPath} ${cliPath} daemon --config ${config}`;
  assert.match(text, /^ExecStart=.*$/m);
  return text.replace(/^ExecStart=.*$/m, exec);
}

test('systemd-analyze verify: no warnings or errors for cmerge.service', { skip }, () => {
  const dir = tempDir('cmerge-unit-');
  const asShipped = verify(dir, unitText);
  assert.deepEqual(asShipped.ours, [], 'as shipped');
  assert.equal(asShipped.status, 0);
  const local = verify(dir, localized(unitText, dir));
  assert.deepEqual(local.ours, [], 'pointing at this checkout');
  assert.equal(local.status, 0);
});

test('systemd-analyze verify catches a broken unit (the check above is not vacuous)', { skip }, () => {
  const dir = tempDir('cmerge-unit-');
  const broken = localized(unitText, dir)
    .replace('Type=notify', 'Type=notifyy')
    .replace('WatchdogSec=60', 'WatchdogSec=60\nWatchdogSecs=60');
  const r = verify(dir, broken);
  assert.ok(
    r.ours.some((l) => /service type.*notifyy/i.test(l)),
    r.ours.join('\n'),
  );
  assert.ok(
    r.ours.some((l) => /Unknown key 'WatchdogSecs'/.test(l)),
    r.ours.join('\n'),
  );
});

/** Directives as systemd reads them: comments dropped, repeated keys kept in order. */
function directives(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#') || t.startsWith(';') || t.startsWith('[')) continue;
    const i = t.indexOf('=');
    const k = t.slice(0, i);
    m.set(k, [...(m.get(k) ?? []), t.slice(i + 1)]);
  }
  return m;
}

test('the unit holds the daemon contract: notify, watchdog, stop budget, sandbox', () => {
  const d = directives(unitText);
  const one = (k: string) => {
    const v = d.get(k);
    assert.ok(v && v.length === 1, `${k} set once`);
    return v[0]!;
  };
  assert.equal(one('Type'), 'notify');
  assert.equal(one('NotifyAccess'), 'main');
  assert.equal(one('ExecStart'), '/usr/bin/env node /opt/cmerge/bin/cmerge.js daemon --config /etc/cmerge/cmerge.yaml');
  assert.equal(one('WatchdogSec'), '60');
  assert.equal(one('Restart'), 'on-failure');
  assert.ok(Number(one('RestartSec')) > 0);
  // above the daemon's 60 s shutdown budget, so the budget decides, not SIGKILL
  const stop = Number(one('TimeoutStopSec'));
  assert.ok(stop > 60 && stop <= 120, `TimeoutStopSec=${stop}`);
  assert.equal(one('KillMode'), 'mixed');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.deepEqual(d.get('ReadWritePaths'), ['/var/lib/cmerge', '/srv/drop', '/srv/models']);
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('User'), 'cmerge');
  assert.match(d.get('Environment')!.join(' '), /OPENBLAS_NUM_THREADS=\d+/);
  // V8's JIT needs W+X pages; PrivateDevices would hide the GPU nodes
  assert.equal(d.get('MemoryDenyWriteExecute'), undefined);
  assert.equal(d.get('PrivateDevices'), undefined);
  assert.match(unitText, /# NOT MemoryDenyWriteExecute[^\n]*JIT/);
  for (const node of ['/dev/nvidiactl', '/dev/nvidia0', '/dev/nvidia-uvm', 'char-nvidia*'])
    assert.ok(unitText.includes(`DeviceAllow=${node} rw`), node);
});

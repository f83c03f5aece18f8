import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, test } from 'node:test';
import { sdNotify, sdNotifyCommand } from '../../src/daemon/systemd-notify.js';
import { loadSys } from '../../src/engine/native.js';
import { tempDir } from '../helpers/paths.js';

/**
 * A real AF_UNIX SOCK_DGRAM listener (Node cannot create one): prints "BOUND", then each datagram
 * as a JSON string per line, closing any passed fds (systemd-notify's BARRIER=1 waits for that).
 */
const LISTENER = `
import array, json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
addr = sys.argv[1]
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print('BOUND', flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array('i'); fds.frombytes(data[: len(data) - len(data) % 4])
            for fd in fds: socket.close(fd)
    print(json.dumps(msg.decode()), flush=True)
`;

interface Listener {
  next(): Promise<string>;
  close(): void;
}

async function listen(address: string): Promise<Listener> {
  const proc: ChildProcessWithoutNullStreams = spawn('python3', ['-c', LISTENER, address]);
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const first = await lines.next();
  assert.equal(first.value, 'BOUND', 'listener failed to bind');
  return {
    async next() {
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('no datagram within 5 s')), 5000).unref(),
      );
      const line = await Promise.race([lines.next(), timeout]);
      assert.ok(!line.done, 'listener exited');
      return JSON.parse(line.value) as string;
    },
    close: () => proc.kill(),
  };
}

const dir = tempDir('cmerge-notify-');
const saved = process.env.NOTIFY_SOCKET;
const listeners: Listener[] = [];
afterEach(() => {
  if (saved === undefined) delete process.env.NOTIFY_SOCKET;
  else process.env.NOTIFY_SOCKET = saved;
});
after(() => listeners.forEach((l) => l.close()));

const sys = loadSys();
const haveCommand = spawnSync('systemd-notify', ['--version']).status === 0;

test('no NOTIFY_SOCKET: does nothing, returns false', () => {
  delete process.env.NOTIFY_SOCKET;
  assert.equal(sdNotify({ READY: '1' }), false);
  assert.equal(sdNotifyCommand({ READY: '1' }), false);
});

test('sends one datagram of KEY=VALUE lines to a socket path', async () => {
  const path = join(dir, 'notify.sock');
  const l = await listen(path);
  listeners.push(l);
  process.env.NOTIFY_SOCKET = path;
  assert.equal(sdNotify({ READY: '1', STATUS: 'merged 3 of 5 tasks' }), true);
  assert.equal(await l.next(), 'READY=1\nSTATUS=merged 3 of 5 tasks');
  assert.equal(sdNotify({ WATCHDOG: '1' }), true);
  assert.equal(await l.next(), 'WATCHDOG=1');
});

test(
  'a leading @ addresses the abstract namespace',
  { skip: sys.addon ? false : `cmerge_sys absent: ${sys.error?.message}` },
  async () => {
    const name = `@cmerge-test-${process.pid}-${Date.now()}`;
    const l = await listen(name);
    listeners.push(l);
    process.env.NOTIFY_SOCKET = name;
    assert.equal(sdNotify({ STOPPING: '1' }), true);
    assert.equal(await l.next(), 'STOPPING=1');
  },
);

test(
  'fallback: the systemd-notify command delivers the same fields',
  { skip: haveCommand ? false : 'systemd-notify not installed' },
  async () => {
    const path = join(dir, 'notify-cmd.sock');
    const l = await listen(path);
    listeners.push(l);
    process.env.NOTIFY_SOCKET = path;
    assert.equal(sdNotifyCommand({ READY: '1', STATUS: 'up' }), true);
    assert.equal(await l.next(), 'READY=1\nSTATUS=up');
  },
);

test('a socket nobody listens on is an error, not a silent false', () => {
  process.env.NOTIFY_SOCKET = join(dir, 'nobody.sock');
  assert.throws(() => sdNotify({ READY: '1' }), /NOTIFY_SOCKET|systemd-notify/);
});

test('malformed fields are rejected before anything is sent', () => {
  process.env.NOTIFY_SOCKET = join(dir, 'unused.sock');
  assert.throws(() => sdNotify({}), /no fields/);
  assert.throws(() => sdNotify({ ready: '1' }), /bad field name/);
  assert.throws(() => sdNotify({ STATUS: 'two\nlines' }), /newline/);
});

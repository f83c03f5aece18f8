import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CountSketch, sketchDot } from '../../src/merge/sketch.js';

function gauss(n: number, seed: number): Float32Array {
  let s = seed;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

test('sketch inner products estimate true ones within a few 1/√B', () => {
  const n = 400_000;
  const zero = new Float32Array(n);
  const x = gauss(n, 1);
  const noise = gauss(n, 2);
  const y = Float32Array.from(x, (v, i) => 0.6 * v + 0.8 * noise[i]); // ⟨x,y⟩/‖x‖² ≈ 0.6
  const sx = new CountSketch(),
    sy = new CountSketch();
  // split over two tensor names, as the runner feeds tensors one by one
  sx.addDiff('a.weight', x.subarray(0, n / 2), zero.subarray(0, n / 2));
  sx.addDiff('b.weight', x.subarray(n / 2), zero.subarray(n / 2));
  sy.addDiff('a.weight', y.subarray(0, n / 2), zero.subarray(0, n / 2));
  sy.addDiff('b.weight', y.subarray(n / 2), zero.subarray(n / 2));
  let xx = 0,
    xy = 0;
  for (let i = 0; i < n; i++) {
    xx += x[i] * x[i];
    xy += x[i] * y[i];
  }
  const rho = sketchDot(sx.buckets, sy.buckets) / xx;
  assert.ok(Math.abs(rho - xy / xx) < 4 / Math.sqrt(65536), `estimate ${rho} vs exact ${xy / xx}`);
  // orthogonal-ish vectors estimate near 0
  const sz = new CountSketch();
  sz.addDiff('a.weight', noise.subarray(0, n / 2), zero.subarray(0, n / 2));
  sz.addDiff('b.weight', noise.subarray(n / 2), zero.subarray(n / 2));
  assert.ok(Math.abs(sketchDot(sx.buckets, sz.buckets) / xx) < 4 / Math.sqrt(65536));
});

test('the same tensor name and index always land in the same bucket (deterministic)', () => {
  const v = gauss(1000, 3),
    z = new Float32Array(1000);
  const a = new CountSketch(),
    b = new CountSketch();
  a.addDiff('t', v, z);
  b.addDiff('t', v, z);
  assert.deepEqual(a.buckets, b.buckets);
  const c = new CountSketch();
  c.addDiff('u', v, z);
  assert.notDeepEqual(a.buckets, c.buckets);
});

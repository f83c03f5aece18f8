import { closeSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { machine, machineTable, python, referenceDir, repoRoot, stepArgs, synth, timed, writeResult } from './lib.js';

/**
 * Peak RSS of OPCM on a TinyLlama-1.1B-shaped bfloat16 model (issue 2: one step ≤ 1 GB, whole
 * `cmerge merge` process under /usr/bin/time). Step 1 (M1 = θ1, no SVD) and step 2 (SVDs of every
 * linear tensor, the largest lm_head 32000×2048) run as separate processes on one state directory.
 *   node dist/bench/llama-rss.js [data-dir] [F32] [--method M] [--param k=v ...]
 * (default bench/work/llama1b; made by synth.py if absent). With F32, the fine-tunes are float32
 * (as trainers often save them) and the base stays bfloat16 (issue 15): the output must still be
 * bfloat16. Another method (e.g. `--method dop --param num_steps=10`) is measured the same way.
 * Writes bench/results/<method>-llama1b-bf16-rss.md, or <method>-llama1b-f32-into-bf16-rss.md.
 */
const BOUND_MIB = 1024;
const cli = parseArgs({
  allowPositionals: true,
  options: { method: { type: 'string', default: 'opcm' }, param: { type: 'string', multiple: true, default: [] } },
});
const method = cli.values.method;
const params = cli.values.param;
const data = cli.positionals[0] ?? join(repoRoot, 'bench', 'work', 'llama1b');
const f32Tasks = cli.positionals[1] === 'F32';
synth(data, 'llama1b', 2, 'BF16');
// same seed: the float32 tasks are the values the bf16 ones were rounded from
const taskData = f32Tasks ? `${data}-f32` : data;
if (f32Tasks) synth(taskData, 'llama1b', 2, 'F32');
const base = join(data, 'base.safetensors');
const work = join(data, 'bench-rss');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const state = join(work, 'state');

/** The float dtypes of a safetensors file's tensors, from its header. */
function dtypesOf(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const header = Buffer.alloc(Number(len.readBigUInt64LE()));
    readSync(fd, header, 0, header.length, 8);
    const entries = Object.entries(JSON.parse(header.toString('utf8')) as Record<string, { dtype?: string }>);
    return [...new Set(entries.filter(([k]) => k !== '__metadata__').map(([, v]) => v.dtype))].sort().join('+');
  } finally {
    closeSync(fd);
  }
}
const outDtypes: string[] = [];

const rows: {
  step: number;
  args: string[];
  seconds: number;
  peakRssMiB: number;
  engine: string;
  update: number;
  output: number;
}[] = [];
for (const [i, task] of ['task_0', 'task_1'].entries()) {
  const args = stepArgs(
    method,
    params,
    base,
    state,
    join(work, `step${i + 1}.safetensors`),
    join(taskData, `${task}.safetensors`),
  );
  const r = timed('node', args);
  const rep = JSON.parse(r.stdout);
  outDtypes.push(dtypesOf(join(work, `step${i + 1}.safetensors`)));
  rows.push({
    step: i + 1,
    args,
    seconds: r.seconds,
    peakRssMiB: r.peakRssMiB,
    engine: rep.engine,
    update: rep.steps[0].seconds.update,
    output: rep.seconds.output,
  });
  console.log(`step ${i + 1}: ${r.seconds.toFixed(1)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`);
  rmSync(join(work, `step${i + 1}.safetensors`), { force: true });
}
rmSync(work, { recursive: true, force: true });

const m = machine();
const bf16Out = outDtypes.every((d) => d === 'BF16');
const ok = rows.every((r) => r.peakRssMiB <= BOUND_MIB) && bf16Out;
const title = f32Tasks ? 'float32 fine-tunes into a bfloat16 base' : 'bfloat16';
const rel = (p: string) => p.replace(repoRoot + '/', '');
const methodName = method.toUpperCase() + (params.length ? ` (${params.join(', ')})` : '');
const text = `# ${methodName} peak RSS, TinyLlama-1.1B shapes, ${title}

Bound (issue 2, set for OPCM): one step with peak RSS ≤ ${BOUND_MIB} MiB (1 GB), whole \`cmerge merge\` process
(\`/usr/bin/time -f '%e %M'\`)${f32Tasks ? '; issue 15: the output is bfloat16 like the base' : ''}. **${ok ? 'Met' : 'NOT met'}.**

Data: \`${python} ${join(referenceDir, 'synth.py')} ${data} llama1b 2 BF16 0\` (base + 2 tasks, 2.2 GB each;
largest linear tensor lm_head 32000×2048, embedding 32000×2048: 262 MB per float32 copy).${
  f32Tasks
    ? `\nThe tasks merged are float32 (4.4 GB each): \`${python} ${join(referenceDir, 'synth.py')} ${taskData} llama1b 2 F32 0\`, same seed; the base is the bfloat16 one.`
    : ''
}
Step 1 merges task_0 (M1 = θ1), step 2 merges task_1 into that state (${method === 'opcm' ? 'one SVD per linear tensor' : method === 'dop' ? 'per linear tensor: the SVDs of both task vectors and the Adam loop' : 'the method’s step'}).
Both write the bf16 output model; one process per step.

| step | engine | wall s | update pass s | output pass s | peak RSS MiB | ≤ ${BOUND_MIB} MiB | output dtype |
|---|---|---|---|---|---|---|---|
${rows.map((r, i) => `| ${r.step} | ${r.engine} | ${r.seconds.toFixed(1)} | ${r.update.toFixed(1)} | ${r.output.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} | ${r.peakRssMiB <= BOUND_MIB ? 'yes' : 'no'} | ${outDtypes[i]} |`).join('\n')}

Commands (cwd ${repoRoot}):
${rows.map((r) => `- step ${r.step}: \`/usr/bin/time -f '%e %M' node ${r.args.map(rel).join(' ')}\``).join('\n')}

Machine (shared with other jobs; wall times are indicative):

| | |
|---|---|
${machineTable(m)}

Reproduce: \`npx tsc -p . && node dist/bench/llama-rss.js ${data}${f32Tasks ? ' F32' : ''}${method === 'opcm' ? '' : ` --method ${method}`}${params.map((p) => ` --param ${p}`).join('')}\`
`;
const name = `${method}-llama1b-${f32Tasks ? 'f32-into-bf16' : 'bf16'}-rss`;
console.log(`wrote ${writeResult(name, text)}`);

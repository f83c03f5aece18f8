import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModelWriter } from '../src/io/model.js';
import {
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
 * One OPCM step with a PEFT LoRA adapter as the checkpoint (issue 9), on a TinyLlama-1.1B-shaped
 * bfloat16 base: a rank-16 adapter on q, k, v, o, gate, up, down of all 22 layers, written here in
 * PEFT's layout (adapter_config.json + adapter_model.safetensors, float32 factors as PEFT keeps
 * them) with cmerge's safetensors writer. Step 1 merges the full task_0 (M1 = θ1); step 2 the
 * adapter into that state, each a whole `cmerge merge` process under /usr/bin/time. Bound: peak
 * RSS ≤ 1 GB. With --full, step 2 also runs with the full task_1 from a copy of the step-1 state,
 * for the wall time on the same machine (else bench/results/opcm-llama1b-bf16-rss.md has it).
 *   node dist/bench/lora-llama.js [data-dir] [--full]   (default bench/work/llama1b; synth.py if absent)
 * Writes bench/results/lora-llama1b.md.
 */
const BOUND_MIB = 1024;
const RANK = 16;
const ALPHA = 32;
const args = process.argv.slice(2);
const withFull = args.includes('--full');
const data = args.find((a) => !a.startsWith('--')) ?? join(repoRoot, 'bench', 'work', 'llama1b');
synth(data, 'llama1b', 2, 'BF16');
const base = join(data, 'base.safetensors');
const work = join(data, 'bench-lora');
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const D = 2048;
const F = 5632;
const KV = 256;
const LAYERS = 22;
/** module → [out, in] of its Linear weight (TinyLlama-1.1B) */
const MODULES: Record<string, [number, number]> = {
  'self_attn.q_proj': [D, D],
  'self_attn.k_proj': [KV, D],
  'self_attn.v_proj': [KV, D],
  'self_attn.o_proj': [D, D],
  'mlp.gate_proj': [F, D],
  'mlp.up_proj': [F, D],
  'mlp.down_proj': [D, F],
};

/** xorshift32 uniform in [−1, 1): deterministic factors without a dependency */
function uniform(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

/** A PEFT LoRA adapter folder: lora_A r×in (Kaiming-uniform-like), lora_B out×r (small, as after training). */
function writeAdapter(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    r: RANK,
    lora_alpha: ALPHA,
    lora_dropout: 0.05,
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    use_rslora: false,
    use_dora: false,
    fan_in_fan_out: false,
    bias: 'none',
    rank_pattern: {},
    alpha_pattern: {},
    modules_to_save: null,
  };
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  const shapes = new Map<string, number[]>();
  for (let i = 0; i < LAYERS; i++) {
    for (const [m, [out, inn]] of Object.entries(MODULES)) {
      const p = `base_model.model.model.layers.${i}.${m}`;
      shapes.set(`${p}.lora_A.weight`, [RANK, inn]);
      shapes.set(`${p}.lora_B.weight`, [out, RANK]);
    }
  }
  const specs = [...shapes].map(([name, shape]) => ({ name, dtype: 'F32' as const, shape }));
  const w = createModelWriter(join(dir, 'adapter_model.safetensors'), specs, { metadata: { format: 'pt' } });
  const rand = uniform(9);
  for (const name of w.order) {
    const [rows, cols] = shapes.get(name)!;
    const scale = name.includes('lora_A') ? 1 / Math.sqrt(cols) : 0.01;
    const values = new Float32Array(rows * cols);
    for (let j = 0; j < values.length; j++) values[j] = scale * rand();
    w.write(name, values);
  }
  w.commit();
}

interface Row {
  label: string;
  args: string[];
  seconds: number;
  peakRssMiB: number;
  engine: string;
  update: number;
  output: number;
  taskNorm: number;
}

function mergeStep(label: string, state: string, ckpt: string, out: string): Row {
  const argv = opcmStepArgs(base, state, out, ckpt);
  const r = timed('node', argv);
  const rep = JSON.parse(r.stdout);
  rmSync(out, { force: true });
  console.log(`${label}: ${r.seconds.toFixed(1)} s, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`);
  return {
    label,
    args: argv,
    seconds: r.seconds,
    peakRssMiB: r.peakRssMiB,
    engine: rep.engine,
    update: rep.steps[0].seconds.update,
    output: rep.seconds.output,
    taskNorm: rep.steps[0].task_vector_norm,
  };
}

const adapter = join(work, 'adapter-r16');
writeAdapter(adapter);
const state = join(work, 'state');
const rows: Row[] = [];
rows.push(mergeStep('1: task_0 (full)', state, join(data, 'task_0.safetensors'), join(work, 'step1.safetensors')));
if (withFull) cpSync(state, join(work, 'state-full'), { recursive: true });
rows.push(mergeStep('2: LoRA adapter r=16', state, adapter, join(work, 'step2-lora.safetensors')));
if (withFull) {
  const s = join(work, 'state-full');
  rows.push(mergeStep('2: task_1 (full)', s, join(data, 'task_1.safetensors'), join(work, 'step2-full.safetensors')));
}
rmSync(work, { recursive: true, force: true });

const m = machine();
const lora = rows[1];
const ok = lora.peakRssMiB <= BOUND_MIB;
const rel = (p: string) => p.replace(repoRoot + '/', '');
const text = `# OPCM step with a LoRA adapter, TinyLlama-1.1B shapes, bfloat16

Bound (issue 9): one OPCM step whose checkpoint is a rank-${RANK} PEFT LoRA adapter, peak RSS ≤ ${BOUND_MIB} MiB
(1 GB), whole \`cmerge merge\` process (\`/usr/bin/time -f '%e %M'\`). **${ok ? 'Met' : 'NOT met'}.**

Data: \`${python} ${join(referenceDir, 'synth.py')} ${data} llama1b 2 BF16 0\` (base + 2 full tasks, 2.2 GB each).
The adapter is written by the bench in PEFT's layout: r = ${RANK}, lora_alpha = ${ALPHA}, on q, k, v, o, gate, up,
down of all ${LAYERS} layers (${LAYERS * 7} modules, float32 factors), lora_A uniform ±1/√in, lora_B uniform ±0.01.
Step 1 merges the full task_0 (M1 = θ1); step 2 merges the adapter into that state: τ = scaling · B A is
formed per targeted tensor by the engine's matmul while streaming, τ = 0 for the rest (embed_tokens,
lm_head, norms) without reading the adapter; OPCM still takes the SVD of the previous state of every
linear tensor, lm_head 32000×2048 included, which dominates the time.
${withFull ? '' : '\nThe full checkpoint step 2: bench/results/opcm-llama1b-bf16-rss.md (or run this bench with --full).\n'}
| step | engine | wall s | update pass s | output pass s | ‖τ‖ | peak RSS MiB | ≤ ${BOUND_MIB} MiB |
|---|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.label} | ${r.engine} | ${r.seconds.toFixed(1)} | ${r.update.toFixed(1)} | ${r.output.toFixed(1)} | ${r.taskNorm.toFixed(3)} | ${r.peakRssMiB.toFixed(0)} | ${r.peakRssMiB <= BOUND_MIB ? 'yes' : 'no'} |`).join('\n')}

Commands (cwd ${repoRoot}):
${rows.map((r) => `- step ${r.label}: \`/usr/bin/time -f '%e %M' node ${r.args.map(rel).join(' ')}\``).join('\n')}

Machine (shared with other jobs; wall times are indicative):

| | |
|---|---|
${machineTable(m)}

Reproduce: \`npx tsc -p . && node dist/bench/lora-llama.js ${data}${withFull ? ' --full' : ''}\`
`;
console.log(`wrote ${writeResult('lora-llama1b', text)}`);

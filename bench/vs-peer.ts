import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cliPath,
  loadAverage,
  machine,
  machineTable,
  maxRelDiff,
  python,
  referenceDir,
  repoRoot,
  synth,
  timed,
  writeResult,
} from './lib.js';

/**
 * One continual-merge step, cmerge against the peer (shared/reference/peer_step.py: the reference
 * library's way, whole models in memory), whole process each, same machine, same run.
 *   node dist/bench/vs-peer.js opcm [data-dir]     ViT-B/32 shapes, OPCM step 2
 *   node dist/bench/vs-peer.js dop  [data-dir]     ViT-B/32 with 2 layers, DOP step 2, num_steps=100
 *                                                  (BENCH_DOP_STEPS sets another count)
 * Step 1 (M1 = θ1) is prepared untimed for both; step 2 is timed.
 */
const method = process.argv[2] as 'opcm' | 'dop';
if (method !== 'opcm' && method !== 'dop') throw new Error('usage: vs-peer.js opcm|dop [data-dir]');
const shape = method === 'opcm' ? 'vitb32' : 'vitb32-l2';
const data = process.argv[3] ?? join(repoRoot, 'bench', 'work', shape);
const runs = Number(process.env.BENCH_RUNS ?? 2);
synth(data, shape, 2, 'F32');
const base = join(data, 'base.safetensors'),
  t0 = join(data, 'task_0.safetensors'),
  t1 = join(data, 'task_1.safetensors');
const work = join(data, `bench-${method}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const dopSteps = Number(process.env.BENCH_DOP_STEPS ?? 100);
const params = method === 'dop' ? ['--param', `num_steps=${dopSteps}`] : [];
// The machine is shared: the 1-minute load average when the timed runs start goes into the result.
const loadAtStart = loadAverage();
const first = timed('node', [
  cliPath,
  'merge',
  '--base',
  base,
  '--state',
  join(work, 'state1'),
  '--method',
  method,
  ...params,
  '--out',
  join(work, 'step1.safetensors'),
  '--json',
  t0,
]);
const n1 = JSON.parse(first.stdout).steps[0].task_vector_norm as number;

const cmergeRuns = [];
for (let i = 0; i < runs; i++) {
  const state = join(work, `state-run${i}`);
  cpSync(join(work, 'state1'), state, { recursive: true });
  const r = timed('node', [
    cliPath,
    'merge',
    '--base',
    base,
    '--state',
    state,
    '--method',
    method,
    ...params,
    '--out',
    join(work, 'cmerge.safetensors'),
    '--json',
    t1,
  ]);
  cmergeRuns.push({ ...r, engine: JSON.parse(r.stdout).engine as string });
}
const peerRuns = [];
for (let i = 0; i < Math.max(1, Number(process.env.BENCH_PEER_RUNS ?? 1)); i++) {
  const stateJson = join(work, 'peer-state.json');
  writeFileSync(
    stateJson,
    JSON.stringify(method === 'opcm' ? { prev_lambda: 1.0, norms: [n1] } : { params: { num_steps: dopSteps } }),
  );
  // M1 = θ1 for both methods: the peer starts from task_0 as the merged model
  peerRuns.push(
    timed(
      python,
      [join(referenceDir, 'peer_step.py'), method, base, t0, t1, join(work, 'peer.safetensors'), stateJson],
      referenceDir,
    ),
  );
}
const diff = maxRelDiff(join(work, 'cmerge.safetensors'), join(work, 'peer.safetensors'));
const agreement = method === 'opcm' ? opcmAgreement() : '';

/**
 * How far apart any two OPCM outputs can be on this data: the peer once more with one OpenBLAS
 * thread instead of the default, against itself, and both outputs against float64 arithmetic.
 */
function opcmAgreement(): string {
  const stateJson = join(work, 'peer-state-1thread.json');
  writeFileSync(stateJson, JSON.stringify({ prev_lambda: 1.0, norms: [n1] }));
  const single = join(work, 'peer-1thread.safetensors');
  timed(python, [join(referenceDir, 'peer_step.py'), method, base, t0, t1, single, stateJson], referenceDir, {
    OPENBLAS_NUM_THREADS: '1',
  });
  const self = maxRelDiff(single, join(work, 'peer.safetensors'));
  const f64 = timed(python, [
    join(repoRoot, 'bench', 'opcm_f64_check.py'),
    data,
    join(work, 'cmerge.safetensors'),
    join(work, 'peer.safetensors'),
  ]);
  return `- the peer against itself, OPENBLAS_NUM_THREADS=1 vs the default: largest per-tensor relative difference **${self.max.toExponential(2)}** (${self.tensor})
${f64.stdout}`;
}
const best = (xs: { seconds: number }[]) => Math.min(...xs.map((x) => x.seconds));
const maxRss = (xs: { peakRssMiB: number }[]) => Math.max(...xs.map((x) => x.peakRssMiB));
const tRatio = best(cmergeRuns) / best(peerRuns);
const mRatio = maxRss(cmergeRuns) / maxRss(peerRuns);
const m = machine();
const cmd = `node dist/bench/vs-peer.js ${method}`;
const text = `# ${method.toUpperCase()} step 2, ${shape} shapes, cmerge vs peer

Command: \`npm run build && ${cmd}\` (data made by shared/reference/synth.py ${shape} 2 F32 seed 0)${method === 'dop' ? `, both with num_steps=${dopSteps}` : ''}.
Whole process each (\`/usr/bin/time\`), same machine, same run; step 1 prepared untimed.

| machine | |
|---|---|
${machineTable(m)}

Load average (1, 5, 15 min) when the bench started: ${loadAtStart}.

| run | wall s | user s | sys s | peak RSS MiB |
|---|---|---|---|---|
${cmergeRuns.map((r, i) => `| cmerge #${i + 1} (${r.engine}) | ${r.seconds.toFixed(2)} | ${r.userSeconds.toFixed(1)} | ${r.sysSeconds.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} |`).join('\n')}
${peerRuns.map((r, i) => `| peer #${i + 1} | ${r.seconds.toFixed(2)} | ${r.userSeconds.toFixed(1)} | ${r.sysSeconds.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} |`).join('\n')}

- wall-time ratio (best cmerge / best peer): **${tRatio.toFixed(3)}**
- peak-RSS ratio (worst cmerge / worst peer): **${mRatio.toFixed(3)}**
- largest per-tensor relative difference cmerge vs peer: **${diff.max.toExponential(2)}** (${diff.tensor})
${agreement}`;
const path = writeResult(`${method}-${shape}-vs-peer`, text);
process.stdout.write(text + `\nwritten to ${path}\n`);

import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { cliPath, maxRelDiff, repoRoot } from '../lib.js';

/**
 * The GPU figures of issue 16, whole process each, cmerge `--engine cuda` beside the peer
 * (`PEER_DEVICE=cuda python3 peer_step.py`) on the same GPU. Made for bench/gpu/run.sh on the
 * lent H200 (no /usr/bin/time, no network; python3 is PyTorch with CUDA), but runs anywhere the
 * cuda engine does.
 *
 *   node dist/bench/gpu/bench.js STAGE
 *     opcm-vitb32      OPCM step 2, ViT-B/32 shapes, F32: cmerge (best of 2) vs the peer, output vs float64
 *     dop-vitb32-l2    DOP step 2, ViT-B/32 with 2 layers, F32, num_steps=100: cmerge vs the peer
 *     opcm-llama1b     OPCM step 2, TinyLlama-1.1B shapes, BF16: run twice (the second with the page cache warm)
 *     peer-llama1b     the peer on the same step (its own stage: it may be slow)
 *     opcm-llama1b-serial  the same step with one tensor in flight (what the overlap gains)
 *     opcm-llama7b-l2  OPCM step 2, Llama-2-7B shapes with 2 layers, BF16; projected whole-7B step
 *     opcm-llama7b-l4  the same with 4 layers (a second point for the projection; optional)
 *
 * Step 1 of each sequence (M1 = θ1, a copy) is prepared untimed. Each stage writes
 * `gpu-<name>.md` and its part of `gpu-summary.json` into GPU_OUT (default $OUT, else
 * bench/results/), after every run, so a stage stopped by its timeout leaves what it measured.
 *
 * Environment: GPU_WORK (data and scratch, default /tmp/cmerge-gpu), CMERGE_REFERENCE (the shared
 * reference's *.py, default .gpu/reference, else ../shared/reference), CMERGE_PYTHON (default
 * python3), BENCH_DEADLINE_MS (epoch ms: no run starts that could not end before it; each child
 * gets the time left as its timeout), BENCH_PEER_DEVICE (the peer's PEER_DEVICE, default cuda; `cpu`
 * to try the script without a GPU, with CMERGE_CUDA_LIBS pointing at the tests' CPU stand-in).
 */

const stage = process.argv[2] ?? '';
const outDir = process.env.GPU_OUT ?? process.env.OUT ?? join(repoRoot, 'bench', 'results');
const work = process.env.GPU_WORK ?? '/tmp/cmerge-gpu';
const python = process.env.CMERGE_PYTHON ?? 'python3';
const reference =
  process.env.CMERGE_REFERENCE ??
  (existsSync(join(repoRoot, '.gpu', 'reference', 'st.py'))
    ? join(repoRoot, '.gpu', 'reference')
    : join(repoRoot, '..', 'shared', 'reference'));
const deadline = Number(process.env.BENCH_DEADLINE_MS ?? 0) || Date.now() + 3600_000;
const timedPy = join(repoRoot, 'bench', 'gpu', 'timed.py');
const synthGpu = join(repoRoot, 'bench', 'gpu', 'synth_gpu.py');
const f64Check = join(repoRoot, 'bench', 'opcm_f64_check.py');
const MiB = 2 ** 20;
/**
 * python children (peer, synth, float64 check) get the LD_LIBRARY_PATH run.sh found before it
 * added the CUDA libraries for cmerge: PyTorch loads its own wheels' libraries.
 */
const pyEnv: NodeJS.ProcessEnv =
  process.env.GPU_PY_LD_LIBRARY_PATH !== undefined ? { LD_LIBRARY_PATH: process.env.GPU_PY_LD_LIBRARY_PATH } : {};

// ---------------------------------------------------------------------------------------------
// running and timing children

interface Run {
  label: string;
  /** the command as run (paths relative to the repository root where they are inside it) */
  command: string;
  ok: boolean;
  status: number | null;
  /** killed at the deadline */
  timedOut: boolean;
  seconds: number;
  /** peak RSS of the whole process (timed.py, else /usr/bin/time; null when neither ran) */
  peakRssMiB: number | null;
  userSeconds: number | null;
  sysSeconds: number | null;
  stdout: string;
  stderrTail: string;
}

function secondsLeft(): number {
  return (deadline - Date.now()) / 1000;
}

const shown = (p: string) => (p.startsWith(repoRoot + '/') ? relative(repoRoot, p) : p);

let timer: 'timed.py' | '/usr/bin/time' | 'none' | undefined;
function pickTimer(): 'timed.py' | '/usr/bin/time' | 'none' {
  if (timer) return timer;
  const probe = spawnSync(python, [timedPy, 'true'], { encoding: 'utf8' });
  if (probe.status === 0 && /__TIME__/.test(probe.stderr)) return (timer = 'timed.py');
  if (existsSync('/usr/bin/time')) return (timer = '/usr/bin/time');
  return (timer = 'none');
}

/**
 * Runs one whole process with the time left before the deadline as its timeout (capped by
 * `capS`); never throws. Wall time, peak RSS and CPU times come from the timer wrapper.
 */
function run(label: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, capS = Infinity): Run {
  const envText = Object.entries(env)
    .map(([k, v]) => `${k}=${v} `)
    .join('');
  const command = `${envText}${shown(cmd)} ${args.map(shown).join(' ')}`;
  const left = Math.min(capS, secondsLeft() - 3);
  if (left < 5) {
    process.exitCode = 1;
    log(`${label}: skipped, ${secondsLeft().toFixed(0)} s left before the deadline`);
    return {
      label,
      command,
      ok: false,
      status: null,
      timedOut: true,
      seconds: 0,
      peakRssMiB: null,
      userSeconds: null,
      sysSeconds: null,
      stdout: '',
      stderrTail: 'not started: no time left',
    };
  }
  const t = pickTimer();
  // timed.py enforces the timeout itself, so a stopped run still reports its time and RSS (node's
  // own timeout closes the pipes with the kill); spawnSync's is the backstop
  const [c, a] =
    t === 'timed.py'
      ? [python, [timedPy, '--timeout', left.toFixed(0), cmd, ...args]]
      : t === '/usr/bin/time'
        ? ['/usr/bin/time', ['-f', '__TIME__ %e %M %U %S %R', cmd, ...args]]
        : [cmd, args];
  log(`${label}: ${command} (timeout ${left.toFixed(0)} s)`);
  const t0 = performance.now();
  const r = spawnSync(c, a, {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, ...(cmd === python ? pyEnv : {}), ...env },
    maxBuffer: 512 * MiB,
    timeout: Math.floor((left + (t === 'timed.py' ? 15 : 0)) * 1000),
    killSignal: 'SIGTERM',
  });
  const wall = (performance.now() - t0) / 1000;
  const m = /__TIME__ ([\d.]+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(r.stderr ?? '');
  const timedOut =
    (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT' || /__TIMEOUT__/.test(r.stderr ?? '');
  const res: Run = {
    label,
    command,
    ok: r.status === 0 && !timedOut,
    status: r.status,
    timedOut,
    seconds: m ? Number(m[1]) : wall,
    peakRssMiB: m ? Number(m[2]) / 1024 : null,
    userSeconds: m ? Number(m[3]) : null,
    sysSeconds: m ? Number(m[4]) : null,
    stdout: r.stdout ?? '',
    stderrTail: (r.stderr ?? '').replace(/__TIME__.*\n?|__TIMEOUT__\n?/g, '').slice(-1500),
  };
  if (!res.ok) process.exitCode = 1;
  log(
    `${label}: ${res.ok ? 'ok' : timedOut ? 'TIMED OUT' : `FAILED (status ${r.status})`}, ${res.seconds.toFixed(2)} s, peak RSS ${res.peakRssMiB?.toFixed(0) ?? '?'} MiB`,
  );
  if (!res.ok) log(res.stderrTail);
  return res;
}

function log(s: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

function sh(c: string): string {
  try {
    return execFileSync('sh', ['-c', c], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------
// cmerge and peer steps

/** The parts of the `cmerge merge --json` report this script reads; the rest is kept as it is. */
interface MergeReport {
  engine_info?: { name: string; device?: string | null; versions?: Record<string, string>; tf32?: boolean };
  gpu?: { gpu_seconds: number; peak_device_bytes: number; cpu_fallbacks: number } | null;
  seconds: { total: number; output: number };
  steps: { task_vector_norm: number; scalars: Record<string, number>; seconds?: { update?: number } }[];
  [key: string]: unknown;
}

interface CmergeRun extends Run {
  report: MergeReport | null;
}

/** The peer's state JSON (peer_step.py reads it and writes it back). */
interface PeerState {
  prev_lambda?: number;
  norms?: number[];
  [key: string]: unknown;
}

interface PeerRun extends Run {
  state: PeerState | null;
}

/** A run as recorded in gpu-summary.json: without its stdout, report or peer state. */
function runRecord(r: Run & { report?: unknown; state?: unknown }): Run {
  const { stdout: _stdout, report: _report, state: _state, ...record } = r;
  return record as Run;
}

function cmergeMerge(
  label: string,
  data: string,
  state: string,
  method: string,
  params: string[],
  out: string,
  task: string,
  capS = Infinity,
  env: NodeJS.ProcessEnv = {},
): CmergeRun {
  const r = run(
    label,
    'node',
    [
      cliPath,
      'merge',
      '--base',
      join(data, 'base.safetensors'),
      '--state',
      state,
      '--method',
      method,
      ...params,
      '--engine',
      'cuda',
      '--out',
      out,
      '--json',
      join(data, `${task}.safetensors`),
    ],
    env,
    capS,
  );
  let report: MergeReport | null = null;
  if (r.ok) {
    try {
      report = JSON.parse(r.stdout) as MergeReport;
    } catch {
      r.ok = false;
      r.stderrTail += '\n(stdout is not the JSON report)';
    }
  }
  return { ...r, stdout: '', report };
}

/** A copy of a state directory for one run: hard links (a step only adds files and renames), else a copy. */
function cloneState(from: string, to: string): void {
  rmSync(to, { recursive: true, force: true });
  const walk = (a: string, b: string) => {
    mkdirSync(b, { recursive: true });
    for (const e of readdirSync(a, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(a, e.name), join(b, e.name));
      else linkSync(join(a, e.name), join(b, e.name));
    }
  };
  try {
    walk(from, to);
  } catch {
    rmSync(to, { recursive: true, force: true });
    cpSync(from, to, { recursive: true });
  }
}

/** Makes the data unless it is there: synth.py (the CPU benches' exact data) or synth_gpu.py. */
function makeData(
  shape: string,
  dtype: 'F32' | 'BF16',
  gpu: boolean,
): { dir: string; command: string; seconds: number } {
  const dir = join(work, `${shape}-${dtype.toLowerCase()}${gpu ? '-gpu' : ''}`);
  const script = gpu ? synthGpu : join(reference, 'synth.py');
  const command = `${python} ${shown(script)} ${dir} ${shape} 2 ${dtype} 0`;
  if (existsSync(join(dir, 'task_1.safetensors'))) return { dir, command, seconds: 0 };
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const r = spawnSync(python, [script, dir, shape, '2', dtype, '0'], {
    cwd: reference,
    encoding: 'utf8',
    env: { ...process.env, ...pyEnv, CMERGE_REFERENCE: reference },
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: Math.max(1000, Math.floor((secondsLeft() - 5) * 1000)),
  });
  if (r.status !== 0 || !existsSync(join(dir, 'task_1.safetensors'))) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`data not made: ${command} (status ${r.status}${r.error ? ', ' + r.error.message : ''})`);
  }
  const seconds = (performance.now() - t0) / 1000;
  log(`data: ${command} in ${seconds.toFixed(1)} s`);
  return { dir, command, seconds };
}

function peerStep(
  label: string,
  method: 'opcm' | 'dop',
  data: string,
  scratch: string,
  stateJson: object,
  capS = Infinity,
): PeerRun {
  const sj = join(scratch, `${label.replace(/\W+/g, '-')}-state.json`);
  writeFileSync(sj, JSON.stringify(stateJson));
  const out = join(scratch, 'peer.safetensors');
  // M1 = θ1 for both methods: the peer starts from task_0 as the merged model
  const r = run(
    label,
    python,
    [
      join(reference, 'peer_step.py'),
      method,
      join(data, 'base.safetensors'),
      join(data, 'task_0.safetensors'),
      join(data, 'task_1.safetensors'),
      out,
      sj,
    ],
    { PEER_DEVICE: process.env.BENCH_PEER_DEVICE ?? 'cuda' },
    capS,
  );
  let state: PeerState | null = null;
  try {
    state = JSON.parse(readFileSync(sj, 'utf8')) as PeerState;
  } catch {
    /* the peer did not finish */
  }
  return { ...r, stdout: '', state };
}

// ---------------------------------------------------------------------------------------------
// machine facts, results

interface Device {
  gpu: string;
  driver: string;
  gpu_memory: string;
  cuda_toolkit: string;
  cpu: string;
  memory: string;
  os: string;
  node: string;
  torch: string;
  timer: string;
}

let deviceCache: Device | undefined;
function device(): Device {
  if (deviceCache) return deviceCache;
  const q = sh('nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1')
    .split(',')
    .map((s) => s.trim());
  deviceCache = {
    gpu: q[0] || 'unknown (no nvidia-smi)',
    driver: q[1] || 'unknown',
    gpu_memory: q[2] || 'unknown',
    cuda_toolkit:
      sh(
        "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc) --version 2>/dev/null | sed -n 's/.*release \\([0-9.]*\\).*/\\1/p'",
      ) || 'unknown',
    cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: sh('. /etc/os-release && echo "$PRETTY_NAME"') + ' / ' + sh('uname -r'),
    node: process.version,
    torch: sh(`${python} -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'`),
    timer: pickTimer(),
  };
  return deviceCache;
}

function engineLine(reps: (MergeReport | null)[]): string {
  const info = reps.find((rep) => rep?.engine_info)?.engine_info;
  if (!info) return '| engine | (no successful cmerge run) |';
  const versions = info.versions
    ? Object.entries(info.versions)
        .map(([library, version]) => `${library} ${version}`)
        .join(', ')
    : '';
  return `| engine | ${info.name}${info.device ? ` on ${info.device}` : ''}${versions ? ` (${versions})` : ''}, tf32 ${info.tf32 ? 'on' : 'off'} |`;
}

function header(title: string, reps: (MergeReport | null)[], extra: string): string {
  const d = device();
  return `# ${title}

Measured by \`bench/gpu/run.sh\` (stage of \`node dist/bench/gpu/bench.js ${stage}\`), ${new Date().toISOString()}.
Whole process each; wall time and peak RSS from \`bench/gpu/timed.py\` (getrusage of the child) unless the timer row says otherwise.
${extra}

| | |
|---|---|
| GPU | ${d.gpu}, ${d.gpu_memory}, driver ${d.driver} |
| CUDA toolkit (nvcc) | ${d.cuda_toolkit} |
${engineLine(reps)}
| peer | PyTorch ${d.torch} |
| host | ${d.cpu}, ${d.memory}, ${d.os} |
| node | ${d.node} |
| timer | ${d.timer} |
`;
}

function runTable(runs: Run[], reps: Map<Run, MergeReport | null> = new Map()): string {
  const rows = runs.map((r) => {
    const rep = reps.get(r);
    const gpu = rep?.gpu
      ? `${rep.gpu.gpu_seconds.toFixed(2)} | ${(rep.gpu.peak_device_bytes / MiB).toFixed(0)} | ${rep.gpu.cpu_fallbacks}`
      : ' | | ';
    const inner = rep
      ? `${rep.seconds.total.toFixed(2)} | ${(rep.steps?.[0]?.seconds?.update ?? 0).toFixed(2)} | ${rep.seconds.output.toFixed(2)}`
      : ' | | ';
    const status = r.ok ? 'ok' : r.timedOut ? `timed out` : `failed (${r.status})`;
    return `| ${r.label} | ${status} | ${r.seconds.toFixed(2)} | ${r.peakRssMiB?.toFixed(0) ?? '?'} | ${inner} | ${gpu} |`;
  });
  return `| run | status | wall s | peak RSS MiB | report total s | update pass s | output pass s | GPU s | peak device MiB | CPU fallbacks |
|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}`;
}

function commands(runs: Run[], data?: { command: string }): string {
  return `Commands (cwd: the repository root${data ? `; data: \`${data.command}\`` : ''}):
${runs.map((r) => `- ${r.label}: \`${r.command}\``).join('\n')}`;
}

function failures(runs: Run[]): string {
  const bad = runs.filter((r) => !r.ok);
  return bad.length
    ? `\nFailed or timed-out runs:\n${bad.map((r) => `- ${r.label}: ${r.timedOut ? 'timed out / not started' : `status ${r.status}`}${r.stderrTail.trim() ? `\n\n\`\`\`\n${r.stderrTail.trim()}\n\`\`\`` : ''}`).join('\n')}\n`
    : '';
}

function writeMd(name: string, text: string): void {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, `gpu-${name}.md`), text);
}

type SummaryDoc = { device?: Device; stages?: Record<string, unknown> };
const summaryPath = () => join(outDir, 'gpu-summary.json');

function readSummary(): SummaryDoc {
  try {
    return JSON.parse(readFileSync(summaryPath(), 'utf8')) as SummaryDoc;
  } catch {
    return {}; // before the first stage
  }
}

/** An earlier stage's warm step-2 wall time from gpu-summary.json (null: that stage has none). */
function warmWall(stage: string): number | null {
  return (readSummary().stages?.[stage] as { warm_wall_s?: number | null } | undefined)?.warm_wall_s ?? null;
}

/** gpu-summary.json: { device, stages: { <stage>: {...} } }, updated in place by each stage. */
function summary(key: string, value: unknown): void {
  mkdirSync(outDir, { recursive: true });
  const doc = readSummary();
  doc.device = device();
  doc.stages = { ...(doc.stages ?? {}), [key]: { ...(value as object), date: new Date().toISOString() } };
  writeFileSync(summaryPath(), JSON.stringify(doc, null, 1) + '\n');
}

const best = (rs: Run[]) => {
  const ok = rs.filter((r) => r.ok);
  return ok.length ? Math.min(...ok.map((r) => r.seconds)) : null;
};
const maxRss = (rs: Run[]) => {
  const v = rs.filter((r) => r.ok && r.peakRssMiB !== null).map((r) => r.peakRssMiB!);
  return v.length ? Math.max(...v) : null;
};
const fmt = (x: number | null | undefined, d = 2) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d);
const exp = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toExponential(2);
const goal = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');
/** the cmerge report without its bulky per-tensor part (kept for the projection and the record) */
const slim = (rep: MergeReport | null) => (rep ? { ...rep, merged_norms: undefined, out_sha256: undefined } : null);

function diff(a: string, b: string): { max: number; tensor: string } | null {
  if (!existsSync(a) || !existsSync(b) || secondsLeft() < 20) return null;
  try {
    return maxRelDiff(a, b);
  } catch (e) {
    log(`difference not computed: ${(e as Error).message}`);
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// stages

/** OPCM or DOP step 2 on ViT-B/32 shapes: cmerge best of 2 vs the peer best of 2. */
function vsPeer(method: 'opcm' | 'dop'): void {
  const shape = method === 'opcm' ? 'vitb32' : 'vitb32-l2';
  const name = `${method}-${shape}`;
  const data = makeData(shape, 'F32', false);
  const scratch = join(work, `run-${name}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const params = method === 'dop' ? ['--param', 'num_steps=100'] : [];
  const prep = cmergeMerge(
    'step 1 (untimed, M1 = θ1)',
    data.dir,
    join(scratch, 'state1'),
    method,
    params,
    join(scratch, 'step1.safetensors'),
    'task_0',
  );
  if (!prep.report) throw new Error(`step 1 failed: ${prep.stderrTail}`);
  const n1 = prep.report.steps[0].task_vector_norm as number;
  const cm: CmergeRun[] = [];
  const peers: PeerRun[] = [];
  const ours = join(scratch, 'cmerge.safetensors'),
    theirs = join(scratch, 'peer.safetensors');
  let d: { max: number; tensor: string } | null = null;
  let f64: { text: string; cmerge: number | null; peer: number | null; tensor: string | null } | null = null;

  const write = () => {
    const reps = new Map<Run, MergeReport | null>(cm.map((r) => [r, r.report]));
    const bc = best(cm),
      bp = best(peers);
    const ratio = bc !== null && bp !== null ? bc / bp : null;
    const lamC = cm.find((r) => r.report)?.report?.steps[0].scalars.lambda as number | undefined;
    const lamP = peers.find((r) => r.state)?.state?.prev_lambda as number | undefined;
    const bound = method === 'opcm' ? 0.5 : 0.25;
    const f64ok = f64?.cmerge === null || f64?.cmerge === undefined ? null : f64.cmerge <= 1e-5;
    const text = `${header(
      `${method.toUpperCase()} step 2, ${shape} shapes F32, cmerge --engine cuda vs the peer on the GPU`,
      cm.map((r) => r.report),
      method === 'dop' ? 'Both with `num_steps=100`; the peer gets `{"params": {"num_steps": 100}}`.' : '',
    )}
${runTable([...cm, ...peers], reps)}

- wall-time ratio, best cmerge / best peer: **${fmt(ratio, 3)}** (goal ≤ ${bound}: ${goal(ratio === null ? null : ratio <= bound)}); best cmerge ${fmt(bc)} s, best peer ${fmt(bp)} s
- peak host RSS: cmerge ${fmt(maxRss(cm), 0)} MiB, peer ${fmt(maxRss(peers), 0)} MiB
- largest per-tensor relative difference cmerge vs peer: **${exp(d?.max)}** (${d?.tensor ?? 'n/a'})
${
  method === 'opcm'
    ? `- λ after step 2: cmerge ${lamC ?? 'n/a'}, peer ${lamP ?? 'n/a'}
- output vs the float64 result (goal ≤ 1e-5 relative per tensor: ${goal(f64ok)}): ${f64 ? f64.text.trim().replace(/^- /, '') : 'not computed'}
`
    : ''
}
${commands([prep, ...cm, ...peers], data)}
${method === 'opcm' ? `- float64 check: \`CMERGE_REFERENCE=${shown(reference)} ${python} bench/opcm_f64_check.py ${data.dir} ${ours} ${theirs}\`\n` : ''}${failures([prep, ...cm, ...peers])}`;
    writeMd(name, text);
    summary(name, {
      shape,
      dtype: 'F32',
      method,
      params: method === 'dop' ? { num_steps: 100 } : { alpha: 0.5 },
      best_cmerge_s: bc,
      best_peer_s: bp,
      wall_ratio: ratio,
      wall_ratio_goal: bound,
      cmerge_peak_rss_mib: maxRss(cm),
      peer_peak_rss_mib: maxRss(peers),
      rel_diff_vs_peer: d,
      lambda: { cmerge: lamC ?? null, peer: lamP ?? null },
      f64: f64 ? { cmerge: f64.cmerge, peer: f64.peer, tensor: f64.tensor, goal: 1e-5 } : null,
      runs: [prep, ...cm, ...peers].map(runRecord),
      reports: cm.map((r) => slim(r.report)),
    });
  };

  for (let i = 0; i < 2; i++) {
    const state = join(scratch, `state-run${i}`);
    cloneState(join(scratch, 'state1'), state);
    cm.push(cmergeMerge(`cmerge #${i + 1}`, data.dir, state, method, params, ours, 'task_1'));
    rmSync(state, { recursive: true, force: true });
    write();
  }
  // The difference and the float64 check follow the first peer run that finishes, before the
  // second: a second run stopped by the deadline (or killed while saving) then costs only a timing.
  let compared = false;
  for (let i = 0; i < 2; i++) {
    peers.push(
      peerStep(
        `peer #${i + 1}`,
        method,
        data.dir,
        scratch,
        method === 'opcm' ? { prev_lambda: 1.0, norms: [n1] } : { params: { num_steps: 100 } },
      ),
    );
    write();
    if (compared || !peers[i]!.ok) continue;
    compared = true;
    d = diff(ours, theirs);
    write();
    if (method === 'opcm' && existsSync(ours) && existsSync(theirs)) {
      const r = run('float64 check', python, [f64Check, data.dir, ours, theirs], { CMERGE_REFERENCE: reference });
      const m = /cmerge \*\*([^*]+)\*\* \(([^)]*)\), peer \*\*([^*]+)\*\*/.exec(r.stdout);
      f64 = {
        text: r.ok ? r.stdout : `failed: ${r.timedOut ? `timed out after ${r.seconds.toFixed(0)} s` : r.stderrTail}`,
        cmerge: m ? Number(m[1]) : null,
        peer: m ? Number(m[3]) : null,
        tensor: m ? m[2] : null,
      };
      write();
    }
  }
}

/** Tensor shapes of a llama-shaped model (synth.py's), for the projection. */
function llamaShapes(
  D: number,
  F: number,
  L: number,
  V: number,
  KV: number,
): { name: string; m: number; n: number; linear: boolean }[] {
  const s = [
    { name: 'model.embed_tokens.weight', m: V, n: D, linear: false },
    { name: 'lm_head.weight', m: V, n: D, linear: true },
    { name: 'model.norm.weight', m: D, n: 1, linear: false },
  ];
  for (let i = 0; i < L; i++) {
    for (const [nm, m, n] of [
      ['q', D, D],
      ['k', KV, D],
      ['v', KV, D],
      ['o', D, D],
      ['gate', F, D],
      ['up', F, D],
      ['down', D, F],
    ] as const)
      s.push({ name: `${i}.${nm}`, m, n, linear: true });
    s.push({ name: `${i}.norm1`, m: D, n: 1, linear: false }, { name: `${i}.norm2`, m: D, n: 1, linear: false });
  }
  return s;
}
const paramsOf = (s: ReturnType<typeof llamaShapes>) => s.reduce((a, t) => a + t.m * t.n, 0);
/** SVD-like work of the linear tensors: Σ m·n·min(m, n) */
const flopsOf = (s: ReturnType<typeof llamaShapes>) =>
  s.filter((t) => t.linear).reduce((a, t) => a + t.m * t.n * Math.min(t.m, t.n), 0);

/** OPCM step 2 on a llama-shaped BF16 model: step 1 untimed, then step 2 twice from the same state. */
function llama(shape: 'llama1b' | 'llama7b-l2' | 'llama7b-l4'): void {
  const name = `opcm-${shape}`;
  // the last stage: the earlier llama stages' data and outputs (~15 GiB) are done with; the work
  // folder reached 21 GiB here in a dry run, on a 64 GiB disk that also holds the system
  if (shape === 'llama7b-l4')
    for (const done of ['llama1b-bf16-gpu', 'run-opcm-llama1b', 'llama7b-l2-bf16-gpu', 'run-opcm-llama7b-l2'])
      rmSync(join(work, done), { recursive: true, force: true });
  const data = makeData(shape, 'BF16', true);
  const scratch = join(work, `run-${name}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const prep = cmergeMerge(
    'step 1 (M1 = θ1, not the figure)',
    data.dir,
    join(scratch, 'state1'),
    'opcm',
    [],
    join(scratch, 'step1.safetensors'),
    'task_0',
  );
  rmSync(join(scratch, 'step1.safetensors'), { force: true });
  if (!prep.report) throw new Error(`step 1 failed: ${prep.stderrTail}`);
  writeFileSync(join(scratch, 'n1.json'), JSON.stringify({ norms: [prep.report.steps[0].task_vector_norm] }));
  const cm: CmergeRun[] = [];
  const ours = join(scratch, 'cmerge.safetensors');
  const rssBound = shape === 'llama1b' ? 1024 : 2048;
  const isL = shape.startsWith('llama7b');
  const write = () => {
    const reps = new Map<Run, MergeReport | null>(cm.map((r) => [r, r.report]));
    const warm = cm[1]?.ok ? cm[1] : null;
    const rss = maxRss(cm);
    let projection = '';
    let proj: object | null = null;
    const rep = (warm ?? cm.find((r) => r.ok))?.report;
    const wall = (warm ?? cm.find((r) => r.ok))?.seconds;
    if (isL && rep && wall !== undefined) {
      const L = shape === 'llama7b-l2' ? 2 : 4;
      const here = llamaShapes(4096, 11008, L, 32000, 4096),
        full = llamaShapes(4096, 11008, 32, 32000, 4096);
      const rP = paramsOf(full) / paramsOf(here),
        rF = flopsOf(full) / flopsOf(here);
      const T = rep.seconds.total as number,
        G = (rep.gpu?.gpu_seconds as number | undefined) ?? 0,
        O = Math.max(0, wall - T);
      const mid = O + Math.min(G, T) * rF + Math.max(0, T - G) * rP;
      const lo = O + T * Math.min(rP, rF),
        hi = O + T * Math.max(rP, rF);
      proj = {
        layers_measured: L,
        params_ratio: rP,
        svd_work_ratio: rF,
        overhead_s: O,
        report_total_s: T,
        gpu_s: G,
        projected_s: mid,
        projected_low_s: lo,
        projected_high_s: hi,
        goal_s: 180,
      };
      projection = `
Projected whole Llama-2-7B step (32 decoder layers; embed_tokens and lm_head once), from the ${warm ? 'warm' : 'first'} run:
- O = wall − report total = ${fmt(O)} s (process start, engine start, exit: once per step);
  T = report total ${fmt(T)} s, of which G = device time ${fmt(G)} s;
  rP = parameters(32 layers) / parameters(${L} layers) = ${fmt(rP, 2)} (reading, streaming, writing scale with the bytes);
  rF = Σ m·n·min(m,n) over linear tensors, 32 layers / ${L} layers = ${fmt(rF, 2)} (the SVDs' work)
- projection O + G·rF + (T − G)·rP = **${fmt(mid, 1)} s** (goal ≤ 180 s: ${goal(mid <= 180)}); bounds O + T·min(rP, rF) … O + T·max(rP, rF) = ${fmt(lo, 1)} … ${fmt(hi, 1)} s
`;
    }
    const peakDev = Math.max(0, ...cm.flatMap((r) => (r.report?.gpu ? [r.report.gpu.peak_device_bytes] : [])));
    const text = `${header(`OPCM step 2, ${shape} shapes BF16, cmerge --engine cuda`, [prep.report, ...cm.map((r) => r.report)], `Data: \`${data.command}\` (bench/gpu/synth_gpu.py: synth.py's shapes and kind of data, drawn on the GPU). Step 1 (M1 = θ1) once, then step 2 twice from copies (hard links) of the same state: ${shape === 'llama1b' ? 'the second run is the warm-page-cache figure' : 'both with the data in the page cache'}.`)}
${runTable([prep, ...cm], new Map([[prep, prep.report], ...reps]))}

- step 2 wall: ${cm.map((r, i) => `run ${i + 1} ${r.ok ? fmt(r.seconds) + ' s' : 'failed'}`).join(', ')}${shape === 'llama1b' ? ` (goal ≤ 30 s warm: ${goal(warm ? warm.seconds <= 30 : null)})` : ''}
- peak host RSS: **${fmt(rss, 0)} MiB** (goal ≤ ${rssBound} MiB: ${goal(rss === null ? null : rss <= rssBound)})
- peak device memory: **${peakDev ? (peakDev / MiB).toFixed(0) + ' MiB' : 'n/a'}**
${projection}
${commands([prep, ...cm], data)}
${failures([prep, ...cm])}`;
    if (shape !== 'llama7b-l4') writeMd(name, text);
    else
      appendSection(
        'opcm-llama7b-l2',
        '## Second point: 4 decoder layers',
        `${text.replace(/^# .*\n/, '')}${fit(warm ?? cm.find((r) => r.ok) ?? null)}`,
      );
    summary(name, {
      shape,
      dtype: 'BF16',
      method: 'opcm',
      data: data.command,
      step2_wall_s: cm.map((r) => (r.ok ? r.seconds : null)),
      warm_wall_s: warm?.seconds ?? null,
      peak_rss_mib: rss,
      rss_goal_mib: rssBound,
      peak_device_bytes: peakDev || null,
      projection: proj,
      runs: [prep, ...cm].map(runRecord),
      reports: [prep, ...cm].map((r) => slim(r.report)),
    });
  };
  for (let i = 0; i < 2; i++) {
    const state = join(scratch, `state-run${i}`);
    cloneState(join(scratch, 'state1'), state);
    cm.push(cmergeMerge(`step 2 #${i + 1}${i === 1 ? ' (warm)' : ''}`, data.dir, state, 'opcm', [], ours, 'task_1'));
    rmSync(state, { recursive: true, force: true });
    write();
  }
  // the output stays for peer-llama1b's comparison, llama1b's state for opcm-llama1b-serial's run
  if (shape !== 'llama1b') rmSync(join(scratch, 'state1'), { recursive: true, force: true });
}

/**
 * The TinyLlama step 2 once more with one tensor in flight (CMERGE_ENGINE_JOBS=1): what the
 * overlap of host and device work gains (docs/cuda-engine.md#overlap), and that the output is
 * the same bytes.
 */
function serialLlama1b(): void {
  const data = makeData('llama1b', 'BF16', true);
  const scratch = join(work, 'run-opcm-llama1b');
  const ours = join(scratch, 'cmerge.safetensors');
  if (!existsSync(join(scratch, 'state1')) || !existsSync(ours)) throw new Error('run the opcm-llama1b stage first');
  const state = join(scratch, 'state-serial');
  cloneState(join(scratch, 'state1'), state);
  const serialOut = join(scratch, 'cmerge-serial.safetensors');
  const r = cmergeMerge('step 2, one tensor in flight', data.dir, state, 'opcm', [], serialOut, 'task_1', Infinity, {
    CMERGE_ENGINE_JOBS: '1',
  });
  rmSync(state, { recursive: true, force: true });
  const same = r.ok ? sh(`cmp -s ${ours} ${serialOut} && echo yes || echo no`).trim() === 'yes' : null;
  rmSync(serialOut, { force: true });
  const warm = warmWall('opcm-llama1b');
  const body = `${runTable([r], new Map([[r, r.report]]))}

- wall with one tensor in flight: **${r.ok ? fmt(r.seconds) + ' s' : 'failed'}**; with two (the warm step 2 above): ${fmt(warm)} s${r.ok && warm ? `; two / one = **${fmt(warm / r.seconds, 3)}**` : ''}
- output byte-identical to the two-in-flight run: **${same === null ? 'n/a' : same ? 'yes' : 'NO'}**
- command: \`${r.command}\`
${failures([r])}`;
  appendSection('opcm-llama1b', '## One tensor in flight (CMERGE_ENGINE_JOBS=1)', body);
  summary('opcm-llama1b-serial', {
    wall_s: r.ok ? r.seconds : null,
    two_in_flight_warm_s: warm,
    identical: same,
    report: slim(r.report),
    run: runRecord(r),
  });
}

/**
 * The two-point projection: wall(L) = a + b·L from the 2- and 4-layer steps (same embed_tokens
 * and lm_head), so wall(32) = wall(2) + 30·b.
 */
function fit(r4: Run | null): string {
  const w2 = warmWall('opcm-llama7b-l2');
  if (w2 === null || !r4?.ok) return '\nTwo-point projection: not possible (a 2- or 4-layer step is missing).\n';
  const b = (r4.seconds - w2) / 2;
  const p = w2 + 30 * b;
  summary('projection-7b-two-point', {
    wall_l2_s: w2,
    wall_l4_s: r4.seconds,
    per_layer_s: b,
    projected_s: p,
    goal_s: 180,
  });
  return `
Two-point projection, wall(L) = a + b·L: wall(2 layers) ${fmt(w2)} s, wall(4 layers) ${fmt(r4.seconds)} s, b = ${fmt(b)} s per decoder layer;
whole 7B step wall(32) = wall(2) + 30·b = **${fmt(p, 1)} s** (goal ≤ 180 s: ${goal(p <= 180)}).
`;
}

/** Replaces (or adds) the section starting with `heading` at the end of gpu-<name>.md. */
function appendSection(name: string, heading: string, body: string): void {
  const md = join(outDir, `gpu-${name}.md`);
  const esc = heading.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const before = existsSync(md)
    ? readFileSync(md, 'utf8').replace(new RegExp(`\\n\\n${esc}[\\s\\S]*$`), '')
    : `# ${name}\n\n(the first part of this result is missing)\n`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(md, `${before.trimEnd()}\n\n${heading}\n\n${body.trim()}\n`);
}

/** The peer on the TinyLlama step (after the llama7b stage: it may take minutes). */
function peerLlama1b(): void {
  const data = makeData('llama1b', 'BF16', true);
  const scratch = join(work, 'run-opcm-llama1b');
  mkdirSync(scratch, { recursive: true });
  let n1: number[] | null = null;
  try {
    n1 = JSON.parse(readFileSync(join(scratch, 'n1.json'), 'utf8')).norms;
  } catch {
    /* opcm-llama1b did not run: the norm of τ1 from the data */
  }
  if (!n1) throw new Error('run the opcm-llama1b stage first (it records ‖τ1‖)');
  const r = peerStep('peer', 'opcm', data.dir, scratch, { prev_lambda: 1.0, norms: n1 });
  const ours = join(scratch, 'cmerge.safetensors');
  const d = r.ok ? diff(ours, join(scratch, 'peer.safetensors')) : null;
  const warm = warmWall('opcm-llama1b');
  const body = `${runTable([r])}

- peer wall: **${r.ok ? fmt(r.seconds) + ' s' : r.timedOut ? `did not finish within ${fmt(r.seconds, 0)} s (stopped at the stage's timeout)` : 'failed'}**; cmerge warm step 2: ${fmt(warm)} s${r.ok && warm ? `; ratio cmerge / peer **${fmt(warm / r.seconds, 3)}**` : ''}
- peak host RSS of the peer: ${fmt(r.peakRssMiB, 0)} MiB
- largest per-tensor relative difference cmerge vs peer (bf16 outputs): ${exp(d?.max)} (${d?.tensor ?? 'n/a'})
- command: \`${r.command}\` (peer state JSON: \`{"prev_lambda": 1.0, "norms": [‖τ1‖ from cmerge's step 1]}\`)
${failures([r])}`;
  appendSection('opcm-llama1b', '## The peer on the same step', body);
  summary('peer-llama1b', {
    peer_wall_s: r.ok ? r.seconds : null,
    timed_out: r.timedOut,
    peer_peak_rss_mib: r.peakRssMiB,
    cmerge_warm_s: warm ?? null,
    rel_diff_vs_cmerge: d,
    run: { ...r, stdout: undefined, state: undefined },
  });
}

const stages: Record<string, () => void> = {
  'opcm-vitb32': () => vsPeer('opcm'),
  'dop-vitb32-l2': () => vsPeer('dop'),
  'opcm-llama1b': () => llama('llama1b'),
  'peer-llama1b': peerLlama1b,
  'opcm-llama1b-serial': serialLlama1b,
  'opcm-llama7b-l2': () => llama('llama7b-l2'),
  'opcm-llama7b-l4': () => llama('llama7b-l4'),
};

if (!stages[stage]) {
  process.stderr.write(`usage: node dist/bench/gpu/bench.js ${Object.keys(stages).join('|')}\n`);
  process.exit(2);
}
mkdirSync(work, { recursive: true });
log(
  `${stage}: work ${work}, results ${outDir}, reference ${reference}, python ${python}, ${secondsLeft().toFixed(0)} s left`,
);
try {
  stages[stage]();
} catch (e) {
  log(`${stage} FAILED: ${(e as Error).stack ?? e}`);
  summary(stage, { error: String((e as Error).message ?? e) });
  process.exitCode = 1;
}
// a size check: what the stage left in the work folder
try {
  log(
    `work folder now ${(Number(sh(`du -sb ${work} | cut -f1`)) / 2 ** 30).toFixed(1)} GiB; ${statSync(work).isDirectory() ? 'kept' : ''}`,
  );
} catch {
  /* informative only */
}

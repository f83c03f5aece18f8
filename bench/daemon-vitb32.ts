import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliPath, machine, machineTable, repoRoot, synth, writeResult } from './lib.js';

/**
 * The daemon on ViT-B/32-shaped checkpoints (shared/reference/synth.py vitb32, 20 tasks):
 * drop-to-published latency against the merge time the daemon records, event-loop delay p99
 * while merges run (prom-client's monitorEventLoopDelay, read and reset every 500 ms through
 * /metrics), and the daemon's RSS once idle after 20 merges.
 *   node dist/bench/daemon-vitb32.js [data-dir] [merges]
 */
const data = process.argv[2] ?? join(repoRoot, 'bench', 'work', 'vitb32-20');
const merges = Number(process.argv[3] ?? 20);
synth(data, 'vitb32', merges, 'F32');
const work = join(data, 'bench-daemon');
rmSync(work, { recursive: true, force: true });
mkdirSync(join(work, 'drop'), { recursive: true });
const port = 19000 + (process.pid % 1000);
writeFileSync(
  join(work, 'cmerge.yaml'),
  `state_dir: ./state\nmetrics_port: ${port}\npipelines:\n  - name: vit\n    base: ${join(data, 'base.safetensors')}\n    drop: ./drop\n    repository: ./repo\n    method: opcm\n    settle_ms: 500\n    retention: {keep: 3}\n`,
);
const daemon = spawn(process.execPath, [cliPath, 'daemon', '--config', join(work, 'cmerge.yaml')], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let logText = '';
daemon.stdout.on('data', (d) => (logText += d));
while (!logText.includes('daemon ready')) await sleep(100);

async function scrape(): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { connection: 'close' } })).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z0-9_:]+)(?:\{[^}]*\})? ([-\d.e+]+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}
const samples: {
  at: number;
  lagP99: number;
  lagMax: number;
  rss: number;
  merging: boolean;
  version: number;
  sinceDrop: number;
}[] = [];
let merging = false;
let dropAt = 0;
let dropping = 0;
const sampler = setInterval(() => {
  // a failed scrape (e.g. a keep-alive connection the server just closed) only loses that sample
  void scrape().then(
    (m) =>
      samples.push({
        at: Date.now(),
        lagP99: m.nodejs_eventloop_lag_p99_seconds,
        lagMax: m.nodejs_eventloop_lag_max_seconds,
        rss: m.process_resident_memory_bytes,
        merging,
        version: dropping,
        sinceDrop: (Date.now() - dropAt) / 1000,
      }),
    () => undefined,
  );
}, 500);

const rows: { version: number; latency: number; mergeS: number }[] = [];
const current = () => {
  try {
    return Number(readlinkSync(join(work, 'repo', 'vit', 'current')));
  } catch {
    return 0;
  }
};
for (let i = 0; i < merges; i++) {
  const name = `task_${i}.safetensors`;
  copyFileSync(join(data, name), join(work, 'drop', `.${name}.part`));
  const t0 = Date.now();
  dropAt = t0;
  dropping = i + 1;
  merging = true;
  renameSync(join(work, 'drop', `.${name}.part`), join(work, 'drop', name));
  while (current() !== i + 1) await sleep(20);
  const latency = (Date.now() - t0) / 1000;
  merging = false;
  let line: string | undefined;
  while (!(line = logText.split('\n').find((l) => l.includes(`"published version ${i + 1}:`)))) await sleep(20);
  rows.push({ version: i + 1, latency, mergeS: JSON.parse(line).merge_s });
  process.stderr.write(
    `version ${i + 1}: latency ${latency.toFixed(2)} s, merge ${rows.at(-1)!.mergeS.toFixed(2)} s\n`,
  );
}
await sleep(5000);
const idleRssMiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))![1]) / 1024;
clearInterval(sampler);
daemon.kill('SIGTERM');
await new Promise((r) => daemon.once('exit', r));

const during = samples.filter((s) => s.merging);
const worstP99 = Math.max(...during.map((s) => s.lagP99)) * 1000;
const sortedP99 = during.map((s) => s.lagP99 * 1000).sort((a, b) => a - b);
const overhead = rows.map((r) => r.latency - r.mergeS);
const slow = during.filter((s) => s.lagP99 * 1000 > 100).sort((a, b) => b.lagP99 - a.lagP99);
const over50 = during.filter((s) => s.lagP99 * 1000 > 50).length;
const pct = (q: number) => sortedP99[Math.min(sortedP99.length - 1, Math.floor(q * sortedP99.length))]!.toFixed(1);
// every window, for comparing runs beyond their worst one
if (process.env.BENCH_SAMPLES) writeFileSync(process.env.BENCH_SAMPLES, JSON.stringify(during));
const m = machine();
const text = `# Daemon on ViT-B/32 shapes: latency, event-loop delay, idle RSS

Command: \`npm run build && node dist/bench/daemon-vitb32.js ${process.argv[2] ?? ''} ${merges}\` (data: shared/reference/synth.py vitb32 ${merges} F32 seed 0).
${merges} checkpoints dropped one by one (copied to a dot name, then renamed), OPCM, settle window 500 ms,
each dropped after the previous version was published. Latency: rename → \`current\` points at the new version.
Merge time: the daemon's own record (worker thread start to merged state and model written).

| machine | |
|---|---|
${machineTable(m)}

| version | drop→published s | merge s | overhead s |
|---|---|---|---|
${rows.map((r, i) => `| ${r.version} | ${r.latency.toFixed(2)} | ${r.mergeS.toFixed(2)} | ${overhead[i].toFixed(2)} |`).join('\n')}

- overhead (latency − merge time): max **${Math.max(...overhead).toFixed(2)} s**, mean ${(overhead.reduce((a, b) => a + b, 0) / overhead.length).toFixed(2)} s (bound: 2 s)
- event-loop delay during merges, p99 per 500 ms window: worst **${worstP99.toFixed(1)} ms**, median of windows ${sortedP99[Math.floor(sortedP99.length / 2)].toFixed(1)} ms over ${during.length} windows, 95th and 99th percentile of windows ${pct(0.95)} and ${pct(0.99)} ms (bound: 100 ms); windows over 50 ms: ${over50}; over 100 ms: ${slow.length}${
  slow.length
    ? ` (worst: ${slow
        .slice(0, 3)
        .map(
          (s) =>
            `version ${s.version} at ${s.sinceDrop.toFixed(1)} s after the drop, p99 ${(s.lagP99 * 1000).toFixed(0)} ms, max ${(s.lagMax * 1000).toFixed(0)} ms`,
        )
        .join('; ')})`
    : ''
}
- daemon RSS when idle after ${merges} merges: **${idleRssMiB.toFixed(0)} MiB** (bound: 150 MB); highest RSS sampled during the run: ${(Math.max(...samples.map((s) => s.rss)) / 2 ** 20).toFixed(0)} MiB (merges run in worker threads of the same process)
`;
const path = writeResult(`daemon-vitb32`, text);
process.stdout.write(text + `\nwritten to ${path}\n`);

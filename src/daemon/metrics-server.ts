import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineRecord } from '../store/index.js';

/**
 * Prometheus metrics of the daemon: process defaults (RSS, event-loop delay percentiles, GC),
 * per-pipeline queue length, current version, entries waiting to be complete, merges in progress
 * with their progress, merge durations, rejections and failed attempts, and the engine of each
 * pipeline's last merge.
 * Served on loopback by default.
 */
export interface PipelineGauges {
  queued: number;
  currentVersion: number | null;
  mergingProgress: number | null;
  /** drop-folder entries waiting to be complete */
  waiting: number;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly mergeSeconds: Histogram;
  private readonly rejections: Counter;
  private readonly failures: Counter;
  /** pipeline → engine of its last merge */
  private readonly engines = new Map<string, EngineRecord>();
  private server: Server | null = null;

  constructor(read: () => Record<string, PipelineGauges>) {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    const gauge = (name: string, help: string, pick: (g: PipelineGauges) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['pipeline'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [pipeline, g] of Object.entries(read())) {
            const v = pick(g);
            if (v !== null) this.set({ pipeline }, v);
          }
        },
      });
    gauge('cmerge_queue_length', 'checkpoints queued, not yet merged', (g) => g.queued);
    gauge('cmerge_current_version', 'newest published version', (g) => g.currentVersion);
    gauge(
      'cmerge_intake_waiting',
      'drop-folder entries not complete yet (growing, a missing shard or adapter file) that intake waits for',
      (g) => g.waiting,
    );
    gauge(
      'cmerge_merge_progress_ratio',
      'progress of the running merge (0..1), absent when idle',
      (g) => g.mergingProgress,
    );
    this.mergeSeconds = new Histogram({
      name: 'cmerge_merge_seconds',
      help: 'merge + publication time per checkpoint',
      labelNames: ['pipeline'],
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [this.registry],
    });
    this.rejections = new Counter({
      name: 'cmerge_rejected_total',
      help: 'checkpoints moved to quarantine',
      labelNames: ['pipeline'],
      registers: [this.registry],
    });
    const engines = this.engines;
    new Gauge({
      name: 'cmerge_engine_info',
      help: 'the engine of the last merge (device empty for the CPU engines)',
      labelNames: ['pipeline', 'engine', 'device'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [pipeline, e] of engines) this.set({ pipeline, engine: e.name, device: e.device ?? '' }, 1);
      },
    });
    this.failures = new Counter({
      name: 'cmerge_merge_failures_total',
      help: 'merge attempts that failed for reasons other than the checkpoint (disk full, I/O, engine) and are retried',
      labelNames: ['pipeline'],
      registers: [this.registry],
    });
  }

  observeMerge(pipeline: string, seconds: number): void {
    this.mergeSeconds.observe({ pipeline }, seconds);
  }

  countRejection(pipeline: string): void {
    this.rejections.inc({ pipeline });
  }

  countFailure(pipeline: string): void {
    this.failures.inc({ pipeline });
  }

  /** a merge of the pipeline reported its engine */
  setEngine(pipeline: string, engine: EngineRecord): void {
    this.engines.set(pipeline, engine);
  }

  async listen(port: number, host: string): Promise<number> {
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e) => res.writeHead(500).end(String(e)),
      );
    });
    await new Promise<void>((resolve, reject) =>
      this.server!.once('error', reject).listen(port, host, () => resolve()),
    );
    const addr = this.server.address();
    return typeof addr === 'object' && addr ? addr.port : port;
  }

  async close(): Promise<void> {
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }
}

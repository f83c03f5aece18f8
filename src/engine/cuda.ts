import { loadNativeAddon } from './native.js';
import type { DopOptions, Svd } from './types.js';

/** An engine's device memory and time (opaque, native/src/cuda/device.h Session). */
export type CudaSession = { readonly __cudaSession: unique symbol };
/** prev's SVD kept on the device between svdResident and opcmApply. */
export type ResidentSvd = { readonly __residentSvd: unique symbol };

export type CudaProbe =
  | {
      ok: true;
      name: string;
      ordinal: number;
      cc: string;
      totalBytes: number;
      driver: string;
      runtime: string;
      cublas: number;
      cusolver: number;
      libs: Record<string, string>;
    }
  | { ok: false; reason: string };

/** The cmerge_cuda addon (native/src/cuda/addon.cc). Rejections carry code CUDA_STICKY, CUDA_OOM or CUDA_ERROR. */
export interface CudaAddon {
  probe(device: number): CudaProbe;
  open(device: number, maxBytes: number, tf32: boolean): CudaSession;
  close(s: CudaSession): void;
  stats(s: CudaSession): { gpuSeconds: number; peakDeviceBytes: number; inUseBytes: number };
  resetStats(s: CudaSession): void;
  memInfo(s: CudaSession): { free: number; total: number };
  sgemm(
    s: CudaSession,
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    transA: boolean,
    transB: boolean,
  ): Promise<Float32Array>;
  svd(s: CudaSession, a: Float32Array, m: number, n: number): Promise<Svd>;
  svdResident(s: CudaSession, a: Float32Array, m: number, n: number): Promise<{ handle: ResidentSvd; s: Float64Array }>;
  opcmApply(
    handle: ResidentSvd,
    tau: Float32Array,
    k: number,
    rank: number,
  ): Promise<{ removedSq: number; cleanedSq: number }>;
  freeResident(handle: ResidentSvd): Promise<void>;
  dopOptimize(
    s: CudaSession,
    base: Float32Array,
    wa: Float32Array,
    wb: Float32Array,
    m: number,
    n: number,
    /** `stop`: read before each step; nonzero ends the loop there, resolving with `stopped` */
    o: DopOptions & { stop?: Int32Array },
  ): Promise<{
    w: Float32Array;
    lossA: number;
    lossB: number;
    weightA: number;
    weightB: number;
    rankA: number;
    rankB: number;
    stopped: boolean;
  }>;
}

export type CudaAvailability = (CudaProbe & { ok: true; addon: CudaAddon }) | { ok: false; reason: string };

/**
 * Whether the cuda engine can run on `device`: the addon is built (it always is where a C++
 * toolchain is: it needs no CUDA to build), the driver and libraries open, and the device
 * answers. Never throws; the reason names what is missing.
 */
export function probeCuda(device: number): CudaAvailability {
  const load = loadNativeAddon<CudaAddon>('cmerge_cuda');
  if (!load.addon) return { ok: false, reason: load.error.message };
  const p = load.addon.probe(device);
  return p.ok ? { ...p, addon: load.addon } : p;
}

/** "13.1.0" from cuBLAS's 130100; "12.0.4" from cuSOLVER's 12004 (their own encodings). */
export function libraryVersion(lib: 'cublas' | 'cusolver', v: number): string {
  return lib === 'cublas'
    ? `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`
    : `${Math.floor(v / 1000)}.${Math.floor(v / 100) % 10}.${v % 100}`;
}

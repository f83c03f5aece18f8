// A check of the test double itself: libcmerge_fakecuda.so (test/native/fake-cuda) exports every
// entry point of cuda_api.h and computes what CUDA would. A small C++ driver opens it with dlopen,
// as the engine's loader does, and prints what it got as JSON.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { cudaApiHeader, fakeCudaLibrary } from '../helpers/fake-cuda.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

const driverSource = String.raw`
#include <dlfcn.h>
#include <cstdio>
#include <cstdlib>
#include "cuda_api.h"
#include "kernels.ptx.inc"
using namespace cmerge::cuda;

static void* lib;
template <class F> F Sym(const char* name) {
  void* p = dlsym(lib, name);
  if (!p) { std::fprintf(stderr, "missing %s\n", name); std::exit(2); }
  return reinterpret_cast<F>(p);
}
#define SYM(field, symbol) auto field = Sym<decltype(Api::field)>(symbol)

template <class T> void Print(const char* key, const T* v, int n) {
  std::printf("\"%s\":[", key);
  for (int i = 0; i < n; ++i) {
    const double x = (double)v[i];
    if (x != x) std::printf("%snull", i ? "," : "");  // NaN: never-written memory
    else std::printf("%s%.17g", i ? "," : "", x);
  }
  std::printf("],");
}

int main(int argc, char** argv) {
  lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { std::fprintf(stderr, "%s\n", dlerror()); return 2; }
  const std::string mode = argv[2];
  if (mode == "symbols") {
    int missing = 0;
    for (int i = 3; i < argc; ++i)
      if (!dlsym(lib, argv[i])) { std::printf("%s\n", argv[i]); ++missing; }
    return missing ? 1 : 0;
  }
  SYM(cudaMalloc, "cudaMalloc");
  SYM(cudaMemcpyAsync, "cudaMemcpyAsync");
  SYM(cudaStreamSynchronize, "cudaStreamSynchronize");
  auto up = [&](const void* host, size_t bytes) {
    void* d = nullptr;
    if (cudaMalloc(&d, bytes) || cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, nullptr)) std::exit(3);
    return d;
  };
  auto down = [&](void* host, const void* dev, size_t bytes) {
    if (cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, nullptr)) std::exit(3);
  };
  std::printf("{");
  if (mode == "gemm") {
    SYM(cublasCreate, "cublasCreate_v2");
    SYM(cublasSgemm, "cublasSgemm_v2");
    cublasHandle_t h;
    cublasCreate(&h);
    const float a[6] = {1, 4, 2, 5, 3, 6};     // A: 2x3, rows (1 2 3) (4 5 6)
    const float b[6] = {7, 10, 8, 11, 9, 12};  // B: 2x3, rows (7 8 9) (10 11 12)
    float* dA = (float*)up(a, sizeof a);
    float* dB = (float*)up(b, sizeof b);
    float* dC = nullptr;  // fresh device memory: NaN, which beta = 0 must ignore
    cudaMalloc((void**)&dC, 4 * sizeof(float));
    const float one = 1, zero = 0;
    // C = A · Bᵀ (2x2)
    int st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, 2, 2, 3, &one, dA, 2, dB, 2, &zero, dC, 2);
    float c[4];
    down(c, dC, sizeof c);
    int bad = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, 2, 2, 3, &one, dA, 1, dB, 2, &zero, dC, 2);  // lda < m
    Print("C", c, 4);
    std::printf("\"status\":%d,\"badLda\":%d", st, bad);
  } else if (mode == "syevd") {
    SYM(cusolverDnCreate, "cusolverDnCreate");
    SYM(cusolverDnDsyevd_bufferSize, "cusolverDnDsyevd_bufferSize");
    SYM(cusolverDnDsyevd, "cusolverDnDsyevd");
    cusolverDnHandle_t h;
    cusolverDnCreate(&h);
    // Lower triangle of (2 1 0; 1 2 0; 0 0 5), eigenvalues 1, 3, 5; 99 above the diagonal must be ignored.
    const double a[9] = {2, 1, 0, 99, 2, 0, 99, 99, 5};
    double* dA = (double*)up(a, sizeof a);
    double *dW = nullptr, *work = nullptr;
    int* info = nullptr;
    cudaMalloc((void**)&dW, 3 * sizeof(double));
    cudaMalloc((void**)&info, sizeof(int));
    int lwork = 0;
    int st1 = cusolverDnDsyevd_bufferSize(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, 3, dA, 3, dW, &lwork);
    cudaMalloc((void**)&work, lwork * sizeof(double));
    int st2 = cusolverDnDsyevd(h, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, 3, dA, 3, dW, work, lwork, info);
    double w[3], v[9];
    int hinfo = -1;
    down(w, dW, sizeof w);
    down(v, dA, sizeof v);
    down(&hinfo, info, sizeof hinfo);
    Print("W", w, 3);
    Print("V", v, 9);
    std::printf("\"lwork\":%d,\"status\":[%d,%d],\"info\":%d", lwork, st1, st2, hinfo);
  } else if (mode == "kernels" || mode == "sticky") {
    SYM(cuModuleLoadData, "cuModuleLoadData");
    SYM(cuModuleGetFunction, "cuModuleGetFunction");
    SYM(cuLaunchKernel, "cuLaunchKernel");
    CUmodule mod = nullptr;
    CUfunction diff = nullptr, dot = nullptr, none = nullptr;
    int load = cuModuleLoadData(&mod, kKernelsPtx);
    int getDiff = cuModuleGetFunction(&diff, mod, "diff_f32");
    int getDot = cuModuleGetFunction(&dot, mod, "dot_f32");
    int getNone = cuModuleGetFunction(&none, mod, "no_such_kernel");
    const float a[5] = {5, 7, 9, 11, 13}, b[5] = {1, 2, 3, 4, 5};
    const double ten = 10;
    float* dA = (float*)up(a, sizeof a);
    float* dB = (float*)up(b, sizeof b);
    float* dOut = nullptr;
    cudaMalloc((void**)&dOut, sizeof a);
    double* dSum = (double*)up(&ten, sizeof ten);
    const double stale[2] = {-1, -1};
    double* dPartials = (double*)up(stale, sizeof stale);
    long long n = 5;
    void* diffArgs[] = {&dA, &dB, &dOut, &n};
    void* dotArgs[] = {&dA, &dB, &n, &dPartials};
    int l1 = cuLaunchKernel(diff, 1, 1, 1, 256, 1, 1, 0, nullptr, diffArgs, nullptr);
    int l2 = cuLaunchKernel(dot, 2, 1, 1, 256, 1, 1, 0, nullptr, dotArgs, nullptr);  // block 1 has no elements
    std::printf("\"load\":%d,\"get\":[%d,%d,%d],\"launch\":[%d,%d],", load, getDiff, getDot, getNone, l1, l2);
    if (mode == "kernels") {
      CUfunction sumF = nullptr;
      int getSum = cuModuleGetFunction(&sumF, mod, "sum_f64");
      int count = 2;
      void* sumArgs[] = {&dPartials, &count, &dSum};
      int l3 = cuLaunchKernel(sumF, 1, 1, 1, 256, 1, 1, 0, nullptr, sumArgs, nullptr);
      float out[5];
      double partials[2], sum;
      down(out, dOut, sizeof out);
      down(partials, dPartials, sizeof partials);
      down(&sum, dSum, sizeof sum);
      Print("diff", out, 5);
      std::printf("\"sumLaunch\":[%d,%d],\"partials\":[%.17g,%.17g],\"dot\":%.17g", getSum, l3,
                  partials[0], partials[1], sum);
    } else {
      SYM(cudaGetLastError, "cudaGetLastError");
      SYM(cudaGetErrorName, "cudaGetErrorName");
      SYM(cublasCreate, "cublasCreate_v2");
      SYM(cusolverDnCreate, "cusolverDnCreate");
      cublasHandle_t bh;
      cusolverDnHandle_t sh;
      std::printf("\"sync\":%d,\"lastError\":%d,\"name\":\"%s\",\"cublas\":%d,\"cusolver\":%d",
                  cudaStreamSynchronize(nullptr), cudaGetLastError(), cudaGetErrorName(700), cublasCreate(&bh),
                  cusolverDnCreate(&sh));
    }
  } else if (mode == "order") {
    SYM(cudaHostAlloc, "cudaHostAlloc");
    SYM(cudaStreamCreateWithFlags, "cudaStreamCreateWithFlags");
    SYM(cudaEventCreateWithFlags, "cudaEventCreateWithFlags");
    SYM(cudaEventRecord, "cudaEventRecord");
    SYM(cudaEventSynchronize, "cudaEventSynchronize");
    SYM(cudaStreamWaitEvent, "cudaStreamWaitEvent");
    SYM(cuModuleLoadData, "cuModuleLoadData");
    SYM(cuModuleGetFunction, "cuModuleGetFunction");
    SYM(cuLaunchKernel, "cuLaunchKernel");
    cudaStream_t s1, s2;
    cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
    cudaEvent_t ev;
    cudaEventCreateWithFlags(&ev, cudaEventDisableTiming);
    float* pinned = nullptr;
    cudaHostAlloc((void**)&pinned, 4 * sizeof(float), cudaHostAllocDefault);
    const float four[4] = {1, 2, 3, 4};
    // 1. A download to pinned memory is there only after a synchronisation.
    float* d = (float*)up(four, sizeof four);
    cudaStreamSynchronize(nullptr);  // s1 does not wait for the legacy stream (non-blocking)
    cudaMemcpyAsync(pinned, d, sizeof four, cudaMemcpyDeviceToHost, s1);
    Print("beforeSync", pinned, 4);
    cudaStreamSynchronize(s1);
    Print("afterSync", pinned, 4);
    // 2. An upload from pinned memory reads it when it runs: refilling the buffer before the
    //    upload's event is waited for changes what arrives.
    float* d2 = nullptr;
    cudaMalloc((void**)&d2, sizeof four);
    for (int i = 0; i < 4; ++i) pinned[i] = 10 + i;
    cudaMemcpyAsync(d2, pinned, sizeof four, cudaMemcpyHostToDevice, s1);
    cudaEventRecord(ev, s1);
    for (int i = 0; i < 4; ++i) pinned[i] = 20 + i;  // no cudaEventSynchronize(ev) first: a bug
    float got[4];
    down(got, d2, sizeof got);  // the legacy stream: s1's copy has not run
    Print("otherStream", got, 4);
    cudaEventSynchronize(ev);
    down(got, d2, sizeof got);
    Print("refilled", got, 4);
    // 3. A kernel on s2 sees s1's upload only after cudaStreamWaitEvent.
    CUmodule mod = nullptr;
    CUfunction diff = nullptr;
    cuModuleLoadData(&mod, kKernelsPtx);
    cuModuleGetFunction(&diff, mod, "diff_f32");
    float *a = nullptr, *out = nullptr;
    cudaMalloc((void**)&a, sizeof four);
    cudaMalloc((void**)&out, sizeof four);
    long long n = 4;
    void* args[] = {&a, &d, &out, &n};
    for (int wait = 0; wait < 2; ++wait) {
      for (int i = 0; i < 4; ++i) pinned[i] = 100 * (i + 1);
      cudaMemcpyAsync(a, pinned, sizeof four, cudaMemcpyHostToDevice, s1);
      cudaEventRecord(ev, s1);
      if (wait) cudaStreamWaitEvent(s2, ev, 0);
      cuLaunchKernel(diff, 1, 1, 1, 256, 1, 1, 0, s2, args, nullptr);
      cudaStreamSynchronize(s2);
      float o[4];
      down(o, out, sizeof o);
      Print(wait ? "withWait" : "withoutWait", o, 4);
      cudaStreamSynchronize(s1);
      cudaMemcpyAsync(a, four, sizeof four, cudaMemcpyHostToDevice, s1);  // reset a
      cudaStreamSynchronize(s1);
    }
    std::printf("\"end\":0");
  }
  std::printf("}\n");
  return 0;
}
`;

let lib = '';
let driver = '';

before(() => {
  lib = fakeCudaLibrary();
  const dir = tempDir('cmerge-fakecuda-');
  const src = join(dir, 'driver.cc');
  driver = join(dir, 'driver');
  writeFileSync(src, driverSource);
  const cxx = process.env.CXX || 'g++';
  const r = spawnSync(cxx, ['-std=c++17', '-I' + join(repoRoot, 'native', 'src', 'cuda'), '-o', driver, src, '-ldl'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `driver build failed:\n${r.stderr}`);
});

/** What the kernels and sticky modes print first: module load, function lookups, two launches. */
interface KernelsOutput {
  load: number;
  get: number[];
  launch: number[];
}

/** The sticky mode's error state after the failed launch. */
interface StickyOutput {
  sync: number;
  lastError: number;
  name: string;
  cublas: number;
  cusolver: number;
}

/** Runs the driver in one mode; T: the JSON object that mode prints. */
function run<T>(mode: string, env: Record<string, string> = {}): T {
  const r = spawnSync(driver, [lib, mode], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(r.status, 0, `driver ${mode} exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Exported names of the Api struct in cuda_api.h: the field name, or the `_v2` symbol its comment gives. */
function apiSymbols(): string[] {
  const header = readFileSync(cudaApiHeader, 'utf8');
  const body = header.slice(header.indexOf('struct Api {'));
  const names: string[] = [];
  for (const m of body
    .slice(0, body.indexOf('};'))
    .matchAll(/\(\*(\w+)\)\([^;]*;[ \t]*(?:\/\/[ \t]*(?:symbol[ \t]+)?(\w+))?/g)) {
    const [, field, comment] = m;
    names.push(comment?.startsWith(field!) ? comment : field!);
  }
  return names;
}

test('exports every entry point cuda_api.h resolves', () => {
  const names = apiSymbols();
  assert.ok(names.length >= 50 && names.includes('cublasSgemm_v2') && names.includes('cuDeviceTotalMem_v2'));
  const r = spawnSync(driver, [lib, 'symbols', ...names], { encoding: 'utf8' });
  assert.equal(r.status, 0, `missing symbols:\n${r.stdout}${r.stderr}`);
});

test('cublasSgemm_v2 N/T gives the column-major product; a bad lda is CUBLAS_STATUS_INVALID_VALUE', () => {
  const out = run<{ C: number[]; status: number; badLda: number }>('gemm');
  assert.equal(out.status, 0);
  assert.deepEqual(out.C, [50, 122, 68, 167]); // (50 68; 122 167)
  assert.equal(out.badLda, 7);
});

test('cusolverDnDsyevd: ascending eigenvalues and eigenvectors of the lower triangle', () => {
  const out = run<{ W: number[]; V: number[]; lwork: number; status: number[]; info: number }>('syevd');
  assert.deepEqual(out.status, [0, 0]);
  assert.equal(out.info, 0);
  assert.ok(out.lwork > 0);
  [1, 3, 5].forEach((want, i) => assert.ok(Math.abs(out.W[i] - want) < 1e-12, `W = ${out.W}`));
  assert.ok(Math.abs(Math.abs(out.V[8]) - 1) < 1e-12, `eigenvector of 5 is ±e3: V = ${out.V}`);
});

test('kernels run through cuModuleGetFunction/cuLaunchKernel; dot_f32 writes per-block partials, sum_f64 adds them in one block', () => {
  const out = run<KernelsOutput & { diff: number[]; sumLaunch: number[]; partials: number[]; dot: number }>('kernels');
  assert.equal(out.load, 0);
  assert.deepEqual(out.get, [0, 0, 500]);
  assert.deepEqual(out.launch, [0, 0]);
  assert.deepEqual(out.diff, [4, 5, 6, 7, 8]);
  // block 0 holds all five products, block 1 none: its partial is 0, not the stale -1
  assert.deepEqual(out.partials, [155, 0]);
  assert.deepEqual(out.sumLaunch, [0, 0], 'sum_f64 found and launched');
  assert.equal(out.dot, 155, 'written, not added to the 10 that was there');
});

test('FAKE_CUDA_STICKY_AFTER=2: the second launch fails with 700 and the device stays lost', () => {
  const out = run<KernelsOutput & StickyOutput>('sticky', { FAKE_CUDA_STICKY_AFTER: '2' });
  assert.deepEqual(out.launch, [0, 700]);
  assert.equal(out.sync, 700);
  assert.equal(out.lastError, 700);
  assert.equal(out.name, 'cudaErrorIllegalAddress');
  assert.equal(out.cublas, 14);
  assert.equal(out.cusolver, 7);
});

test('stream work runs as late as a GPU may run it: a missing synchronisation or cross-stream wait gives stale bytes', () => {
  const out = run<Record<string, number[]>>('order');
  // Fresh pinned memory is 0xFF bytes: NaN as float32 (null in JSON).
  assert.deepEqual(out.beforeSync, [null, null, null, null]);
  assert.deepEqual(out.afterSync, [1, 2, 3, 4]);
  assert.deepEqual(out.otherStream, [null, null, null, null], 'fresh device memory: the copy on s1 has not run');
  assert.deepEqual(out.refilled, [20, 21, 22, 23], 'the upload read the pinned buffer when it ran');
  assert.deepEqual(out.withoutWait, [null, null, null, null], 'the kernel ran before the upload on the other stream');
  assert.deepEqual(out.withWait, [99, 198, 297, 396]);
});

// libcmerge_fakecuda.so: a CPU stand-in for the CUDA libraries, used only by the tests.
//
// The CUDA engine (native/src/cuda) opens libcudart, libcublas, libcusolver and libcuda with
// dlopen and resolves the entry points of native/src/cuda/cuda_api.h. With
// CMERGE_CUDA_LIBS=<this library> it takes every one of them from here instead, so the engine's
// host code (loading, memory accounting, transfers, error paths, the order of the calls) runs in
// the tests and in CI on a machine without a GPU. Nothing here is used in production; the real
// engine is checked on a real GPU by bench/gpu/run.sh.
//
// What it does:
//   - device memory is host memory;
//   - work on a stream runs as late as a GPU could run it (see "streams" below): copies, memsets,
//     kernels and cuBLAS/cuSOLVER calls are queued and run, in stream order, only when the host
//     has to see their effect, so a missing synchronisation or a missing cross-stream wait
//     gives wrong bytes here every time, instead of once in a while on a GPU;
//   - cuBLAS and cuSOLVER calls go to OpenBLAS (cblas) and LAPACKE, column-major as in CUDA;
//   - cuModuleLoadData accepts PTX text; cuModuleGetFunction knows the kernels of
//     native/src/cuda/kernels.cu and checks that the PTX declares them with the parameter types
//     the host versions below expect; cuLaunchKernel runs the host version, which computes what
//     the CUDA kernel computes (same float/double conversions; the BlockSum reductions add in the
//     order a 256-thread block does, the grid-stride ones write one partial sum per block, and
//     sum_f64 adds them in the kernel's order: the bits a GPU gives, every run).
// Stricter than a GPU where that is cheap, so that host-code bugs show here:
//   - every device pointer a copy, a kernel or a BLAS/LAPACK call touches must lie inside one
//     cudaMalloc (or cudaHostAlloc) block: an out-of-range kernel or BLAS access is reported on
//     stderr and becomes the sticky cudaErrorIllegalAddress (700), as a GPU fault would;
//   - fresh cudaMalloc/cudaHostAlloc memory is filled with 0xFF bytes (NaN as float or double,
//     -1 as int), so a read of memory never written (a sum not zeroed first) shows;
//   - launches with y/z dimensions other than 1 are refused (kernels.cu uses only x), and the
//     BlockSum kernels need blockDim.x == 256 (THREADS);
//   - the cuSOLVER calls check lwork against the _bufferSize answer and the workspace bounds.
//
// Environment (read at each call, so a test may set it before the calls it concerns):
//   FAKE_CUDA_DEVICES=n            device count (default 1; 0: cudaErrorNoDevice)
//   FAKE_CUDA_MEM_BYTES=n          device memory size (default 16 GiB)
//   FAKE_CUDA_STICKY_AFTER=n       the n-th cuLaunchKernel of the process (1-based) fails with
//                                  700 and the "device" is lost: from then on the runtime calls
//                                  return 700, cuBLAS 14 and cuSOLVER 7 (device queries, version
//                                  queries and the error-string functions still answer)
//   FAKE_CUDA_FAIL_MALLOC_AFTER=n  the n-th and later cudaMalloc calls return 2 (not sticky)
//
// Build: test/helpers/fake-cuda.ts (g++ -std=c++17 -shared -fPIC -ffp-contract=off
// -I native/src/cuda ... -lopenblas -llapacke). -ffp-contract=off matters: kernels.cu is
// compiled with --fmad=false, so no multiply-add may be fused here either.

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_api.h"

using namespace cmerge::cuda;

#define FAKE_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
struct KernelDef;  // one kernel of kernels.cu, below
}

// The opaque handle types of cuda_api.h, given bodies here.
struct cmerge::cuda::CUstream_st {
  unsigned flags;
  std::deque<std::function<void()>> work{};  // queued, not run yet, in stream order
  unsigned long long submitted = 0, done = 0;
};
namespace {
// Where an event's record sits in its stream's work; shared with the queued item that marks it
// reached, so that destroying the event before then is harmless.
struct EventMark {
  bool reached = false;
  std::chrono::steady_clock::time_point at;
};
}  // namespace
struct cmerge::cuda::CUevent_st {
  unsigned flags;
  cudaStream_t stream = nullptr;  // of the last cudaEventRecord (nullptr: never recorded)
  unsigned long long seq = 0;     // its position in that stream's work
  std::shared_ptr<EventMark> mark{};
};
struct cmerge::cuda::CUctx_st {
  int device;
};
struct cmerge::cuda::CUmod_st {
  std::string ptx;
};
struct cmerge::cuda::CUfunc_st {
  const KernelDef* def;
  CUmodule module;
};
struct cmerge::cuda::cublasContext {
  cudaStream_t stream = nullptr;
  int mathMode = CUBLAS_DEFAULT_MATH;
};
struct cmerge::cuda::cusolverDnContext {
  cudaStream_t stream = nullptr;
};

namespace {

// ---- status codes (values of the CUDA 12/13 headers) -------------------------------------------
constexpr int kErrInvalidValue = 1;           // cudaErrorInvalidValue / CUDA_ERROR_INVALID_VALUE
constexpr int kErrMemoryAllocation = 2;       // cudaErrorMemoryAllocation / CUDA_ERROR_OUT_OF_MEMORY
constexpr int kErrInvalidPitch = 12;          // cudaErrorInvalidPitchValue
constexpr int kErrInvalidMemcpyDirection = 21;
constexpr int kErrNoDevice = 100;             // cudaErrorNoDevice / CUDA_ERROR_NO_DEVICE
constexpr int kErrInvalidDevice = 101;        // cudaErrorInvalidDevice / CUDA_ERROR_INVALID_DEVICE
constexpr int kErrInvalidImage = 200;         // CUDA_ERROR_INVALID_IMAGE
constexpr int kErrInvalidContext = 201;       // CUDA_ERROR_INVALID_CONTEXT
constexpr int kErrInvalidHandle = 400;        // cudaErrorInvalidResourceHandle / CUDA_ERROR_INVALID_HANDLE
constexpr int kErrNotFound = 500;             // CUDA_ERROR_NOT_FOUND
constexpr int kErrNotReady = 600;            // cudaErrorNotReady
constexpr int kErrIllegalAddress = 700;       // cudaErrorIllegalAddress / CUDA_ERROR_ILLEGAL_ADDRESS

constexpr int kCublasNotInitialized = 1;
constexpr int kCublasInvalidValue = 7;
constexpr int kCublasExecutionFailed = 13;
constexpr int kCublasInternalError = 14;

constexpr int kCusolverNotInitialized = 1;
constexpr int kCusolverInvalidValue = 3;
constexpr int kCusolverInternalError = 7;

constexpr int kThreads = 256;  // THREADS in kernels.cu (BlockSum's shared buffer)

// ---- environment ---------------------------------------------------------------------------
long long EnvInt(const char* name, long long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  return (end && *end == '\0' && n >= 0) ? n : fallback;
}
int DeviceCount() { return static_cast<int>(EnvInt("FAKE_CUDA_DEVICES", 1)); }
size_t TotalMemory() { return static_cast<size_t>(EnvInt("FAKE_CUDA_MEM_BYTES", 16LL << 30)); }

__attribute__((format(printf, 1, 2))) void Report(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "fake CUDA: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
}

// ---- global state ----------------------------------------------------------------------------
std::atomic<int> gSticky{0};      // the lost-device error, once there is one
std::atomic<int> gLastError{0};   // what cudaGetLastError returns (and resets) when not sticky
std::atomic<long long> gLaunches{0};
std::atomic<long long> gMallocs{0};

struct Block {
  size_t size;
  bool device;  // cudaMalloc (counted against the device memory) or cudaHostAlloc
};
std::mutex gMu;  // guards everything below
std::map<uintptr_t, Block> gBlocks;
size_t gAllocated = 0;
std::set<const void*> gStreams, gEvents, gFunctions;
int gPrimaryRetains = 0;
cmerge::cuda::CUctx_st gPrimaryCtx{0};

// A device region of `bytes` from p is usable when it lies inside one allocated block.
bool InBlock(const void* p, size_t bytes) {
  if (bytes == 0) return true;
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(gMu);
  auto it = gBlocks.upper_bound(a);
  if (it == gBlocks.begin()) return false;
  --it;
  return a - it->first <= it->second.size && bytes <= it->second.size - (a - it->first);
}

// Removes a handle; false when it was not live. (find + erase(iterator): erase(key) would be
// instantiated out of line and exported with libstdc++'s default visibility.)
bool Forget(std::set<const void*>& set, const void* h) {
  std::lock_guard<std::mutex> lock(gMu);
  auto it = set.find(h);
  if (it == set.end()) return false;
  set.erase(it);
  return true;
}

bool Live(const std::set<const void*>& set, const void* h) {
  std::lock_guard<std::mutex> lock(gMu);
  return set.count(h) != 0;
}
bool StreamOk(cudaStream_t s) { return s == nullptr || Live(gStreams, s); }

// Runtime calls: a sticky error wins, then no device; the result is recorded for cudaGetLastError.
int Rt(int err) {
  if (err != 0) gLastError = err;
  return err;
}
int RtEnter() {
  if (const int s = gSticky.load()) return s;
  if (DeviceCount() == 0) return kErrNoDevice;
  return 0;
}
void LoseDevice() {
  int expected = 0;
  gSticky.compare_exchange_strong(expected, kErrIllegalAddress);
}

// ---- streams ---------------------------------------------------------------------------------
// A stream's work runs, in order, only at a point where the host has to see it: a
// cudaStreamSynchronize or cudaEventSynchronize that covers it, a copy to pageable host memory
// (synchronous in CUDA), cudaFree or cudaFreeHost (they synchronise the device in CUDA), or when a
// stream that waits (cudaStreamWaitEvent) on an event of another stream reaches that wait; then
// the other stream runs up to the event. That is the latest a GPU may run it. So host code that
// reads a download or refills a pinned staging buffer without waiting for its event, or a stream
// that uses another stream's upload without a wait, gets stale bytes here deterministically.
// After a lost device, queued work is dropped, as a dead context's is.
std::mutex gWorkMu;  // every stream's queue; taken before gMu, never while holding it
CUstream_st gLegacyStream{0};

CUstream_st* Q(cudaStream_t s) { return s ? s : &gLegacyStream; }

// Runs s's work up to its `upto`-th item. gWorkMu is held (the items run under it).
void RunUntil(CUstream_st* s, unsigned long long upto) {
  while (s->done < upto && !s->work.empty()) {
    std::function<void()> item = std::move(s->work.front());
    s->work.pop_front();
    ++s->done;
    if (!gSticky.load()) item();
  }
}

void Submit(cudaStream_t stream, std::function<void()> item) {
  std::lock_guard<std::mutex> lock(gWorkMu);
  CUstream_st* s = Q(stream);
  s->work.push_back(std::move(item));
  ++s->submitted;
}

// Runs a stream's work, or every stream's (cudaFree, cudaFreeHost: the device synchronises).
void SyncStream(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(gWorkMu);
  RunUntil(Q(stream), Q(stream)->submitted);
}
void SyncAll() {
  std::lock_guard<std::mutex> lock(gWorkMu);
  std::vector<CUstream_st*> all{&gLegacyStream};
  {
    std::lock_guard<std::mutex> g(gMu);
    for (const void* p : gStreams) all.push_back(static_cast<CUstream_st*>(const_cast<void*>(p)));
  }
  for (CUstream_st* s : all) RunUntil(s, s->submitted);
}

// s is a live stream (or the legacy one) whose work may still be run.
bool Runnable(CUstream_st* s) {
  if (s == &gLegacyStream) return true;
  std::lock_guard<std::mutex> g(gMu);
  return gStreams.count(s) != 0;
}

const char* RuntimeName(int e) {
  switch (e) {
    case 0: return "cudaSuccess";
    case kErrInvalidValue: return "cudaErrorInvalidValue";
    case kErrMemoryAllocation: return "cudaErrorMemoryAllocation";
    case kErrInvalidPitch: return "cudaErrorInvalidPitchValue";
    case kErrInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case kErrNoDevice: return "cudaErrorNoDevice";
    case kErrInvalidDevice: return "cudaErrorInvalidDevice";
    case kErrInvalidHandle: return "cudaErrorInvalidResourceHandle";
    case kErrNotReady: return "cudaErrorNotReady";
    case kErrIllegalAddress: return "cudaErrorIllegalAddress";
    default: return "unrecognized error code";
  }
}
const char* ErrorText(int e) {  // the runtime's and the driver's strings agree for these codes
  switch (e) {
    case 0: return "no error";
    case kErrInvalidValue: return "invalid argument";
    case kErrMemoryAllocation: return "out of memory";
    case kErrInvalidPitch: return "invalid pitch argument";
    case kErrInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case kErrNoDevice: return "no CUDA-capable device is detected";
    case kErrInvalidDevice: return "invalid device ordinal";
    case kErrInvalidImage: return "device kernel image is invalid";
    case kErrInvalidContext: return "invalid device context";
    case kErrInvalidHandle: return "invalid resource handle";
    case kErrNotFound: return "named symbol not found";
    case kErrNotReady: return "device not ready";
    case kErrIllegalAddress: return "an illegal memory access was encountered";
    default: return nullptr;
  }
}

void* AllocBlock(size_t size, bool device) {
  const size_t rounded = (size + 255) / 256 * 256;  // cudaMalloc's 256-byte alignment
  void* p = std::aligned_alloc(256, rounded);
  if (!p) return nullptr;
  std::memset(p, 0xFF, rounded);
  std::lock_guard<std::mutex> lock(gMu);
  gBlocks[reinterpret_cast<uintptr_t>(p)] = Block{size, device};
  if (device) gAllocated += size;
  return p;
}

// Frees a block of the given kind; false when p is not one.
bool FreeBlock(void* p, bool device) {
  {
    std::lock_guard<std::mutex> lock(gMu);
    auto it = gBlocks.find(reinterpret_cast<uintptr_t>(p));
    if (it == gBlocks.end() || it->second.device != device) return false;
    if (device) gAllocated -= it->second.size;
    gBlocks.erase(it);
  }
  std::free(p);
  return true;
}

// Elements a column-major rows×cols matrix with leading dimension ld spans (0 when empty).
size_t Span(long long rows, long long cols, long long ld) {
  if (rows <= 0 || cols <= 0) return 0;
  return static_cast<size_t>((cols - 1) * ld + rows);
}

// ---- kernels: host versions of native/src/cuda/kernels.cu --------------------------------------
struct Launch {
  const char* kernel;
  unsigned grid;  // gridDim.x (blockDim.x matters only to BlockSum, checked at the launch: 256)
  void** args;

  template <class T>
  T Arg(int i) const {
    T v;
    std::memcpy(&v, args[i], sizeof v);
    return v;
  }
  // Device range check for an argument; reports and returns false when out of range.
  bool Need(const void* p, size_t bytes, const char* what) const {
    if (InBlock(p, bytes)) return true;
    Report("%s: %s = %p, %zu bytes, is not inside device memory (a GPU would fault)", kernel, what, p, bytes);
    return false;
  }
};
constexpr int kOk = 0;
constexpr int kFault = kErrIllegalAddress;

// BlockSum of kernels.cu: the shared-memory tree over 256 per-thread values.
double BlockSum(double* buf) {
  for (int s = kThreads / 2; s > 0; s >>= 1)
    for (int t = 0; t < s; ++t) buf[t] += buf[t + s];
  return buf[0];
}

// Grid-stride reduction: thread g of the grid adds f(i) for i = g, g + T, ... (T = grid·256) in
// that order; block b's tree sum goes to partials[b] (0 for a block with no elements).
template <class Term>
void GridStrideSum(const Launch& L, long long n, Term term, double* partials) {
  const long long total = static_cast<long long>(L.grid) * kThreads;
  for (long long b = 0; b < static_cast<long long>(L.grid); ++b) {
    double buf[kThreads] = {};
    for (long long base = b * kThreads; base < n; base += total)
      for (int t = 0; t < kThreads && base + t < n; ++t) buf[t] += term(base + t);
    partials[b] = BlockSum(buf);
  }
}

int F32ToF64(const Launch& L) {
  auto src = L.Arg<const float*>(0);
  auto dst = L.Arg<double*>(1);
  auto n = L.Arg<long long>(2);
  if (n <= 0) return kOk;
  if (!L.Need(src, n * sizeof(float), "src") || !L.Need(dst, n * sizeof(double), "dst")) return kFault;
  for (long long i = 0; i < n; ++i) dst[i] = static_cast<double>(src[i]);
  return kOk;
}

int ColSumsqF64(const Launch& L) {
  auto x = L.Arg<const double*>(0);
  auto rows = L.Arg<int>(1);
  auto ld = L.Arg<int>(2);
  auto out = L.Arg<double*>(3);
  const unsigned cols = L.grid;
  if (ld < 0 || !L.Need(x, Span(rows, cols, ld) * sizeof(double), "x") || !L.Need(out, cols * sizeof(double), "out"))
    return kFault;
  for (unsigned c = 0; c < cols; ++c) {
    const double* col = x + static_cast<long long>(c) * ld;
    double buf[kThreads] = {};
    for (int r = 0; r < rows; ++r) buf[r % kThreads] += col[r] * col[r];
    out[c] = BlockSum(buf);
  }
  return kOk;
}

template <class Out>
int GatherCols(const Launch& L) {
  auto src = L.Arg<const double*>(0);
  auto lds = L.Arg<int>(1);
  auto rows = L.Arg<int>(2);
  auto idx = L.Arg<const int*>(3);
  auto scale = L.Arg<const double*>(4);
  auto dst = L.Arg<Out*>(5);
  auto ldd = L.Arg<int>(6);
  const unsigned cols = L.grid;
  if (lds < 0 || ldd < 0 || !L.Need(idx, cols * sizeof(int), "idx") ||
      (scale && !L.Need(scale, cols * sizeof(double), "scale")) ||
      !L.Need(dst, Span(rows, cols, ldd) * sizeof(Out), "dst"))
    return kFault;
  for (unsigned c = 0; c < cols; ++c) {
    const double* s = src + static_cast<long long>(idx[c]) * lds;
    if (rows > 0 && !L.Need(s, rows * sizeof(double), "src column idx[c]")) return kFault;
    Out* d = dst + static_cast<long long>(c) * ldd;
    const double f = scale ? scale[c] : 1.0;
    for (int r = 0; r < rows; ++r) d[r] = static_cast<Out>(s[r] * f);
  }
  return kOk;
}

// RandAt of kernels.cu (and native/src/linalg/svd.cc).
double RandAt(uint64_t col, uint64_t row) {
  uint64_t z = ((col << 32) | row) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

int FillRandomCols(const Launch& L) {
  auto dst = L.Arg<double*>(0);
  auto ld = L.Arg<int>(1);
  auto rows = L.Arg<int>(2);
  auto seed = L.Arg<const int*>(3);
  const unsigned cols = L.grid;
  if (ld < 0 || !L.Need(seed, cols * sizeof(int), "seed") || !L.Need(dst, Span(rows, cols, ld) * sizeof(double), "dst"))
    return kFault;
  for (unsigned c = 0; c < cols; ++c) {
    double* d = dst + static_cast<long long>(c) * ld;
    for (int r = 0; r < rows; ++r)
      d[r] = RandAt(static_cast<unsigned long long>(seed[c]), static_cast<unsigned long long>(r));
  }
  return kOk;
}

int ColDotF32(const Launch& L) {
  auto a = L.Arg<const float*>(0);
  auto b = L.Arg<const float*>(1);
  auto rows = L.Arg<int>(2);
  auto ld = L.Arg<int>(3);
  auto out = L.Arg<double*>(4);
  const unsigned cols = L.grid;
  const size_t span = Span(rows, cols, ld) * sizeof(float);
  if (ld < 0 || !L.Need(a, span, "a") || !L.Need(b, span, "b") || !L.Need(out, cols * sizeof(double), "out"))
    return kFault;
  for (unsigned c = 0; c < cols; ++c) {
    const long long off = static_cast<long long>(c) * ld;
    double buf[kThreads] = {};
    for (int r = 0; r < rows; ++r)
      buf[r % kThreads] += static_cast<double>(a[off + r]) * static_cast<double>(b[off + r]);
    out[c] = BlockSum(buf);
  }
  return kOk;
}

int ScaleColsF32(const Launch& L) {
  auto src = L.Arg<const float*>(0);
  auto lds = L.Arg<int>(1);
  auto rows = L.Arg<int>(2);
  auto d = L.Arg<const double*>(3);
  auto squared = L.Arg<int>(4);
  auto dst = L.Arg<float*>(5);
  auto ldd = L.Arg<int>(6);
  const unsigned cols = L.grid;
  if (lds < 0 || ldd < 0 || !L.Need(d, cols * sizeof(double), "d") ||
      !L.Need(src, Span(rows, cols, lds) * sizeof(float), "src") ||
      !L.Need(dst, Span(rows, cols, ldd) * sizeof(float), "dst"))
    return kFault;
  for (unsigned c = 0; c < cols; ++c) {
    const float* s = src + static_cast<long long>(c) * lds;
    float* o = dst + static_cast<long long>(c) * ldd;
    const double f = d[c];
    for (int r = 0; r < rows; ++r) {
      double v = static_cast<double>(s[r]) * f;
      if (squared) v = v * f;
      o[r] = static_cast<float>(v);
    }
  }
  return kOk;
}

int SubSumsqF32(const Launch& L) {
  auto t = L.Arg<float*>(0);
  auto r = L.Arg<const float*>(1);
  auto n = L.Arg<long long>(2);
  auto partials = L.Arg<double*>(3);
  if (!L.Need(partials, 2 * sizeof(double) * L.grid, "partials")) return kFault;
  if (n > 0 && (!L.Need(t, n * sizeof(float), "t") || !L.Need(r, n * sizeof(float), "r"))) return kFault;
  // The two block sums of one block, as in the kernel: rs and ts per thread, then the trees.
  const long long total = static_cast<long long>(L.grid) * kThreads;
  for (long long b = 0; b < static_cast<long long>(L.grid); ++b) {
    double rs[kThreads] = {}, ts[kThreads] = {};
    for (long long base = b * kThreads; base < n; base += total) {
      for (int k = 0; k < kThreads && base + k < n; ++k) {
        const long long i = base + k;
        const float x = r[i];
        const float y = t[i] - x;
        t[i] = y;
        rs[k] += static_cast<double>(x) * static_cast<double>(x);
        ts[k] += static_cast<double>(y) * static_cast<double>(y);
      }
    }
    partials[b] = BlockSum(rs);
    partials[L.grid + b] = BlockSum(ts);
  }
  return kOk;
}

// The element-wise kernels: a grid-stride loop covers all n whatever the grid.
template <class Body>
int Elementwise(const Launch& L, long long n, std::initializer_list<std::pair<const void*, const char*>> arrays,
                size_t elem, Body body) {
  if (n <= 0) return kOk;
  for (const auto& [p, what] : arrays)
    if (!L.Need(p, static_cast<size_t>(n) * elem, what)) return kFault;
  for (long long i = 0; i < n; ++i) body(i);
  return kOk;
}

int DiffF32(const Launch& L) {
  auto a = L.Arg<const float*>(0);
  auto b = L.Arg<const float*>(1);
  auto out = L.Arg<float*>(2);
  auto n = L.Arg<long long>(3);
  return Elementwise(L, n, {{a, "a"}, {b, "b"}, {out, "out"}}, sizeof(float),
                     [&](long long i) { out[i] = a[i] - b[i]; });
}

int Mean2F32(const Launch& L) {
  auto a = L.Arg<const float*>(0);
  auto b = L.Arg<const float*>(1);
  auto out = L.Arg<float*>(2);
  auto n = L.Arg<long long>(3);
  return Elementwise(L, n, {{a, "a"}, {b, "b"}, {out, "out"}}, sizeof(float), [&](long long i) {
    out[i] = static_cast<float>((static_cast<double>(a[i]) + static_cast<double>(b[i])) / 2.0);
  });
}

int GradAccF32(const Launch& L) {
  auto g = L.Arg<float*>(0);
  auto x = L.Arg<const float*>(1);
  auto accumulate = L.Arg<int>(2);
  auto n = L.Arg<long long>(3);
  return Elementwise(L, n, {{g, "g"}, {x, "x"}}, sizeof(float), [&](long long i) {
    g[i] = accumulate ? static_cast<float>(static_cast<double>(g[i]) + 2.0 * static_cast<double>(x[i]))
                      : static_cast<float>(2.0 * static_cast<double>(x[i]));
  });
}

int DotF32(const Launch& L) {
  auto a = L.Arg<const float*>(0);
  auto b = L.Arg<const float*>(1);
  auto n = L.Arg<long long>(2);
  auto partials = L.Arg<double*>(3);
  if (!L.Need(partials, sizeof(double) * L.grid, "partials")) return kFault;
  if (n > 0 && (!L.Need(a, n * sizeof(float), "a") || !L.Need(b, n * sizeof(float), "b"))) return kFault;
  GridStrideSum(
      L, n, [&](long long i) { return static_cast<double>(a[i]) * static_cast<double>(b[i]); }, partials);
  return kOk;
}

// One block: thread t adds x[t], x[t + 256], ... in order, then the tree.
int SumF64(const Launch& L) {
  auto x = L.Arg<const double*>(0);
  auto count = L.Arg<int>(1);
  auto out = L.Arg<double*>(2);
  if (L.grid != 1) {
    Report("sum_f64: launched with %u blocks; it sums in one", L.grid);
    return kFault;
  }
  if (!L.Need(out, sizeof(double), "out")) return kFault;
  if (count > 0 && !L.Need(x, sizeof(double) * count, "x")) return kFault;
  double buf[kThreads] = {};
  for (int i = 0; i < count; ++i) buf[i % kThreads] += x[i];
  *out = BlockSum(buf);
  return kOk;
}

int AdamF32(const Launch& L) {
  auto w = L.Arg<float*>(0);
  auto m = L.Arg<float*>(1);
  auto v = L.Arg<float*>(2);
  auto ga = L.Arg<const float*>(3);
  auto gb = L.Arg<const float*>(4);
  auto wa = L.Arg<double>(5);
  auto wb = L.Arg<double>(6);
  auto beta1 = L.Arg<double>(7);
  auto beta2 = L.Arg<double>(8);
  auto stepSize = L.Arg<double>(9);
  auto bc2sqrt = L.Arg<double>(10);
  auto eps = L.Arg<double>(11);
  auto n = L.Arg<long long>(12);
  return Elementwise(L, n, {{w, "w"}, {m, "m"}, {v, "v"}, {ga, "ga"}, {gb, "gb"}}, sizeof(float), [&](long long i) {
    const double g = wa * static_cast<double>(ga[i]) + wb * static_cast<double>(gb[i]);
    const double mi = beta1 * static_cast<double>(m[i]) + (1.0 - beta1) * g;
    const double vi = beta2 * static_cast<double>(v[i]) + (1.0 - beta2) * g * g;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    w[i] = static_cast<float>(static_cast<double>(w[i]) - (stepSize * mi) / (std::sqrt(vi) / bc2sqrt + eps));
  });
}

// One kernel of kernels.cu: its name, its parameters (p pointer, i int, l long long, d double,
// in order), whether it uses BlockSum (then blockDim.x must be 256), and its host version.
struct KernelDef {
  const char* name;
  const char* params;
  bool blockSum;
  int (*run)(const Launch&);
};

const KernelDef kKernels[] = {
    {"f32_to_f64", "ppl", false, F32ToF64},
    {"col_sumsq_f64", "piip", true, ColSumsqF64},
    {"gather_cols_f64", "piipppi", false, GatherCols<double>},
    {"gather_cols_f64_to_f32", "piipppi", false, GatherCols<float>},
    {"fill_random_cols", "piip", false, FillRandomCols},
    {"col_dot_f32", "ppiip", true, ColDotF32},
    {"scale_cols_f32", "piipipi", false, ScaleColsF32},
    {"sub_sumsq_f32", "pplp", true, SubSumsqF32},
    {"diff_f32", "pppl", false, DiffF32},
    {"mean2_f32", "pppl", false, Mean2F32},
    {"grad_acc_f32", "ppil", false, GradAccF32},
    {"dot_f32", "pplp", true, DotF32},
    {"sum_f64", "pip", true, SumF64},
    {"adam_f32", "pppppdddddddl", false, AdamF32},
};

// The PTX parameter types of `.entry name(...)` in the module's text ("u64,u32,..."); false when
// the PTX has no such entry.
bool PtxParams(const std::string& ptx, const char* name, std::string* types) {
  const std::string head = std::string(".entry ") + name + "(";
  const size_t at = ptx.find(head);
  if (at == std::string::npos) return false;
  const size_t from = at + head.size(), end = ptx.find(')', from);
  const std::string list = ptx.substr(from, end == std::string::npos ? std::string::npos : end - from);
  types->clear();
  for (size_t p = list.find(".param"); p != std::string::npos; p = list.find(".param", p + 6)) {
    size_t q = list.find('.', p + 6);  // the type: .u64, .u32, .f64, ...
    size_t e = list.find_first_of(" \t", q);
    if (!types->empty()) *types += ",";
    *types += list.substr(q + 1, e - q - 1);
  }
  return true;
}

std::string ExpectedPtxParams(const char* params) {
  std::string out;
  for (const char* c = params; *c; ++c) {
    if (!out.empty()) out += ",";
    out += (*c == 'i') ? "u32" : (*c == 'd') ? "f64" : "u64";
  }
  return out;
}

// Compares up to the first difference, so a short NUL-terminated image is not over-read.
bool StartsWith(const char* text, const char* magic) {
  for (; *magic; ++text, ++magic)
    if (*text != *magic) return false;
  return true;
}

int CublasEnter(cublasHandle_t h) {
  if (gSticky.load()) return kCublasInternalError;
  return h ? 0 : kCublasNotInitialized;
}
int CusolverEnter(cusolverDnHandle_t h) {
  if (gSticky.load()) return kCusolverInternalError;
  return h ? 0 : kCusolverNotInitialized;
}

// A BLAS/LAPACK operand out of device memory: the GPU kernel behind the call would fault.
bool Operand(const char* call, const char* what, const void* p, size_t bytes) {
  if (InBlock(p, bytes)) return true;
  Report("%s: %s = %p, %zu bytes, is not inside device memory (a GPU would fault)", call, what, p, bytes);
  LoseDevice();
  return false;
}

// cuBLAS ignores C when beta is 0 (C may hold NaN); set the m×n block to 0 first.
template <class T>
void ZeroIfBetaZero(T beta, T* c, int m, int n, int ldc) {
  if (beta != T(0)) return;
  for (int j = 0; j < n; ++j) std::memset(c + static_cast<size_t>(j) * ldc, 0, sizeof(T) * m);
}

template <class T, class Gemm>
cublasStatus_t GemmImpl(const char* call, cublasHandle_t h, int ta, int tb, int m, int n, int k, const T* alpha,
                        const T* A, int lda, const T* B, int ldb, const T* beta, T* C, int ldc, Gemm gemm) {
  if (const int s = CublasEnter(h)) return s;
  const bool okOp = (ta >= 0 && ta <= 2) && (tb >= 0 && tb <= 2);  // N, T, C (C = T for reals)
  if (!okOp || m < 0 || n < 0 || k < 0 || !alpha || !beta) return kCublasInvalidValue;
  const int aRows = ta == CUBLAS_OP_N ? m : k, aCols = ta == CUBLAS_OP_N ? k : m;
  const int bRows = tb == CUBLAS_OP_N ? k : n, bCols = tb == CUBLAS_OP_N ? n : k;
  if (lda < std::max(1, aRows) || ldb < std::max(1, bRows) || ldc < std::max(1, m)) return kCublasInvalidValue;
  if (m == 0 || n == 0) return 0;
  const bool useAB = k > 0 && *alpha != T(0);
  if ((useAB && (!Operand(call, "A", A, Span(aRows, aCols, lda) * sizeof(T)) ||
                 !Operand(call, "B", B, Span(bRows, bCols, ldb) * sizeof(T)))) ||
      !Operand(call, "C", C, Span(m, n, ldc) * sizeof(T)))
    return kCublasExecutionFailed;
  const T al = *alpha, be = *beta;  // host pointers: read at the call, as cuBLAS does
  Submit(h->stream, [=] {
    ZeroIfBetaZero(be, C, m, n, ldc);
    gemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
         m, n, k, al, A, lda, B, ldb, be, C, ldc);
  });
  return 0;
}

// cuSOLVER: lwork must be at least what the _bufferSize call answered, and work, A and devInfo
// must be device memory.
int WorkSize(int n) { return std::max(1, n); }

// Queues a LAPACKE call on the handle's stream; its info goes to devInfo when it runs. (A LAPACKE
// workspace failure, which cuSOLVER would have reported at the call, is reported then.)
int Lapack(cusolverDnHandle_t h, const char* call, std::function<lapack_int()> run, int* devInfo) {
  Submit(h->stream, [=] {
    const lapack_int info = run();
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
      Report("%s: LAPACKE could not allocate its workspace", call);
    *devInfo = static_cast<int>(info);
  });
  return 0;
}

}  // namespace

// =============================================================================================
// libcudart
// =============================================================================================

FAKE_EXPORT cudaError_t cudaGetDeviceCount(int* count) {
  if (const int s = gSticky.load()) return Rt(s);
  if (!count) return Rt(kErrInvalidValue);
  *count = DeviceCount();
  return Rt(*count == 0 ? kErrNoDevice : 0);
}

FAKE_EXPORT cudaError_t cudaSetDevice(int device) {
  if (const int e = RtEnter()) return Rt(e);
  return Rt(device < 0 || device >= DeviceCount() ? kErrInvalidDevice : 0);
}

// The scheduling flags (spin 1, yield 2, blocking sync 4; auto 0) and map-host 8: the host
// always blocks here, so only their validity is checked.
FAKE_EXPORT cudaError_t cudaSetDeviceFlags(unsigned flags) {
  if (const int e = RtEnter()) return Rt(e);
  const unsigned sched = flags & 7u;
  return Rt((flags & ~15u) != 0 || (sched != 0 && sched != 1 && sched != 2 && sched != 4) ? kErrInvalidValue : 0);
}

FAKE_EXPORT cudaError_t cudaRuntimeGetVersion(int* version) {
  if (!version) return Rt(kErrInvalidValue);
  *version = 13000;
  return 0;
}

FAKE_EXPORT cudaError_t cudaDriverGetVersion(int* version) {
  if (!version) return Rt(kErrInvalidValue);
  *version = 13000;
  return 0;
}

FAKE_EXPORT cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (const int e = RtEnter()) return Rt(e);
  if (!ptr) return Rt(kErrInvalidValue);
  *ptr = nullptr;
  const long long nth = ++gMallocs;
  const long long failAfter = EnvInt("FAKE_CUDA_FAIL_MALLOC_AFTER", 0);
  if (failAfter > 0 && nth >= failAfter) return Rt(kErrMemoryAllocation);
  if (size == 0) return 0;
  {
    std::lock_guard<std::mutex> lock(gMu);
    if (size > TotalMemory() - std::min(gAllocated, TotalMemory())) return Rt(kErrMemoryAllocation);
  }
  *ptr = AllocBlock(size, true);
  return *ptr ? 0 : Rt(kErrMemoryAllocation);
}

FAKE_EXPORT cudaError_t cudaFree(void* ptr) {
  SyncAll();  // as in CUDA, cudaFree waits for the device's work
  // After a lost device the memory still goes back (the host code cannot use it anyway).
  const bool known = ptr == nullptr || FreeBlock(ptr, true);
  if (const int e = RtEnter()) return Rt(e);
  return Rt(known ? 0 : kErrInvalidValue);
}

FAKE_EXPORT cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned flags) {
  (void)flags;
  if (const int e = RtEnter()) return Rt(e);
  if (!ptr) return Rt(kErrInvalidValue);
  *ptr = AllocBlock(size == 0 ? 1 : size, false);
  return *ptr ? 0 : Rt(kErrMemoryAllocation);
}

FAKE_EXPORT cudaError_t cudaFreeHost(void* ptr) {
  SyncAll();
  const bool known = ptr == nullptr || FreeBlock(ptr, false);
  if (const int e = RtEnter()) return Rt(e);
  return Rt(known ? 0 : kErrInvalidValue);
}

namespace {
// The device side(s) of a copy of `bytes` must be device (or pinned) memory.
int CheckCopy(const char* call, void* dst, size_t dstBytes, const void* src, size_t srcBytes, int kind) {
  if (kind < 0 || kind > 4) return kErrInvalidMemcpyDirection;
  const bool dstDevice = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool srcDevice = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dstDevice && !InBlock(dst, dstBytes)) {
    Report("%s: destination %p, %zu bytes, is not inside device memory", call, dst, dstBytes);
    return kErrInvalidValue;
  }
  if (srcDevice && !InBlock(src, srcBytes)) {
    Report("%s: source %p, %zu bytes, is not inside device memory", call, src, srcBytes);
    return kErrInvalidValue;
  }
  return 0;
}

// Inside a cudaHostAlloc block: a copy from or to it is asynchronous in CUDA.
bool Pinned(const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(gMu);
  auto it = gBlocks.upper_bound(a);
  if (it == gBlocks.begin()) return false;
  --it;
  return !it->second.device && a - it->first <= it->second.size && bytes <= it->second.size - (a - it->first);
}

// Queues a copy of `rows` rows of `width` bytes. As CUDA: a copy from pageable host memory takes
// the source's bytes at the call (the caller may reuse the buffer at once); a copy to pageable
// host memory returns when done (the stream runs up to it).
int QueueCopy(char* dst, size_t dpitch, const char* src, size_t spitch, size_t width, size_t rows, int kind,
              cudaStream_t stream) {
  const size_t srcBytes = (rows - 1) * spitch + width, dstBytes = (rows - 1) * dpitch + width;
  if (kind == cudaMemcpyHostToDevice && !Pinned(src, srcBytes)) {
    auto copy = std::make_shared<std::vector<char>>(src, src + srcBytes);
    Submit(stream, [=] {
      for (size_t r = 0; r < rows; ++r) std::memmove(dst + r * dpitch, copy->data() + r * spitch, width);
    });
    return 0;
  }
  Submit(stream, [=] {
    for (size_t r = 0; r < rows; ++r) std::memmove(dst + r * dpitch, src + r * spitch, width);
  });
  if (kind == cudaMemcpyDeviceToHost && !Pinned(dst, dstBytes)) {
    SyncStream(stream);
    if (const int s = gSticky.load()) return s;
  }
  return 0;
}
}  // namespace

FAKE_EXPORT cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, int kind, cudaStream_t stream) {
  if (const int e = RtEnter()) return Rt(e);
  if (!StreamOk(stream)) return Rt(kErrInvalidHandle);
  if (count == 0) return 0;
  if (const int e = CheckCopy("cudaMemcpyAsync", dst, count, src, count, kind)) return Rt(e);
  return Rt(QueueCopy(static_cast<char*>(dst), count, static_cast<const char*>(src), count, count, 1, kind, stream));
}

FAKE_EXPORT cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                          size_t height, int kind, cudaStream_t stream) {
  if (const int e = RtEnter()) return Rt(e);
  if (!StreamOk(stream)) return Rt(kErrInvalidHandle);
  if (width == 0 || height == 0) return 0;
  if (width > dpitch || width > spitch) return Rt(kErrInvalidPitch);
  const size_t dstBytes = (height - 1) * dpitch + width, srcBytes = (height - 1) * spitch + width;
  if (const int e = CheckCopy("cudaMemcpy2DAsync", dst, dstBytes, src, srcBytes, kind)) return Rt(e);
  return Rt(QueueCopy(static_cast<char*>(dst), dpitch, static_cast<const char*>(src), spitch, width, height, kind,
                      stream));
}

FAKE_EXPORT cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  if (const int e = RtEnter()) return Rt(e);
  if (!StreamOk(stream)) return Rt(kErrInvalidHandle);
  if (count == 0) return 0;
  if (!InBlock(ptr, count)) {
    Report("cudaMemsetAsync: %p, %zu bytes, is not inside device memory", ptr, count);
    return Rt(kErrInvalidValue);
  }
  Submit(stream, [=] { std::memset(ptr, value, count); });
  return 0;
}

FAKE_EXPORT cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  if (const int e = RtEnter()) return Rt(e);
  if (!freeBytes || !totalBytes) return Rt(kErrInvalidValue);
  const size_t total = TotalMemory();
  std::lock_guard<std::mutex> lock(gMu);
  *totalBytes = total;
  *freeBytes = total - std::min(gAllocated, total);
  return 0;
}

FAKE_EXPORT cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (const int e = RtEnter()) return Rt(e);
  if (!stream) return Rt(kErrInvalidValue);
  *stream = new CUstream_st{flags};
  std::lock_guard<std::mutex> lock(gMu);
  gStreams.insert(*stream);
  return 0;
}

FAKE_EXPORT cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream && Live(gStreams, stream)) SyncStream(stream);  // CUDA finishes a destroyed stream's work
  const bool known = Forget(gStreams, stream);
  if (known) delete stream;
  if (const int e = RtEnter()) return Rt(e);
  return Rt(known ? 0 : kErrInvalidHandle);
}

FAKE_EXPORT cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (const int e = RtEnter()) return Rt(e);
  if (!StreamOk(stream)) return Rt(kErrInvalidHandle);
  SyncStream(stream);
  return Rt(gSticky.load());
}

FAKE_EXPORT cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  (void)flags;
  if (const int e = RtEnter()) return Rt(e);
  if (!StreamOk(stream) || !Live(gEvents, event)) return Rt(kErrInvalidHandle);
  // The wait is for the event's last record as of now; an event never recorded is no wait.
  std::lock_guard<std::mutex> lock(gWorkMu);
  if (!event->stream) return 0;
  CUstream_st* const other = event->stream;
  const unsigned long long seq = event->seq;
  CUstream_st* s = Q(stream);
  s->work.push_back([other, seq] {
    if (Runnable(other)) RunUntil(other, seq);
  });
  ++s->submitted;
  return 0;
}

FAKE_EXPORT cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  if (const int e = RtEnter()) return Rt(e);
  if (!event) return Rt(kErrInvalidValue);
  *event = new CUevent_st{flags};
  std::lock_guard<std::mutex> lock(gMu);
  gEvents.insert(*event);
  return 0;
}

FAKE_EXPORT cudaError_t cudaEventDestroy(cudaEvent_t event) {
  const bool known = Forget(gEvents, event);
  if (known) delete event;
  if (const int e = RtEnter()) return Rt(e);
  return Rt(known ? 0 : kErrInvalidHandle);
}

FAKE_EXPORT cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (const int e = RtEnter()) return Rt(e);
  if (!Live(gEvents, event) || !StreamOk(stream)) return Rt(kErrInvalidHandle);
  auto mark = std::make_shared<EventMark>();
  std::lock_guard<std::mutex> lock(gWorkMu);
  CUstream_st* s = Q(stream);
  s->work.push_back([mark] {
    mark->reached = true;
    mark->at = std::chrono::steady_clock::now();
  });
  event->stream = s;
  event->seq = ++s->submitted;
  event->mark = mark;
  return 0;
}

FAKE_EXPORT cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (const int e = RtEnter()) return Rt(e);
  if (!Live(gEvents, event)) return Rt(kErrInvalidHandle);
  {
    std::lock_guard<std::mutex> lock(gWorkMu);
    if (event->stream && Runnable(event->stream)) RunUntil(event->stream, event->seq);
  }
  return Rt(gSticky.load());
}

FAKE_EXPORT cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (const int e = RtEnter()) return Rt(e);
  if (!ms) return Rt(kErrInvalidValue);
  if (!Live(gEvents, start) || !Live(gEvents, end)) return Rt(kErrInvalidHandle);
  // As CUDA: events without timing, or never recorded, are invalid handles here.
  if ((start->flags | end->flags) & cudaEventDisableTiming) return Rt(kErrInvalidHandle);
  if (!start->mark || !end->mark) return Rt(kErrInvalidHandle);
  std::lock_guard<std::mutex> lock(gWorkMu);
  if (!start->mark->reached || !end->mark->reached) return Rt(kErrNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->mark->at - start->mark->at).count();
  return 0;
}

FAKE_EXPORT cudaError_t cudaGetLastError() {
  if (const int s = gSticky.load()) return s;
  return gLastError.exchange(0);
}

FAKE_EXPORT const char* cudaGetErrorString(cudaError_t error) {
  const char* text = ErrorText(error);
  return text ? text : "unrecognized error code";
}

FAKE_EXPORT const char* cudaGetErrorName(cudaError_t error) { return RuntimeName(error); }

// =============================================================================================
// libcuda (driver). Device queries answer even after a lost device; the context, module and
// launch calls then return 700.
// =============================================================================================

FAKE_EXPORT CUresult cuInit(unsigned flags) {
  if (flags != 0) return kErrInvalidValue;
  return DeviceCount() == 0 ? kErrNoDevice : 0;
}

FAKE_EXPORT CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  if (!device) return kErrInvalidValue;
  if (ordinal < 0 || ordinal >= DeviceCount()) return kErrInvalidDevice;
  *device = ordinal;
  return 0;
}

FAKE_EXPORT CUresult cuDeviceGetName(char* name, int len, CUdevice device) {
  if (!name || len <= 0) return kErrInvalidValue;
  if (device < 0 || device >= DeviceCount()) return kErrInvalidDevice;
  std::snprintf(name, static_cast<size_t>(len), "%s", "cmerge fake CUDA (CPU)");
  return 0;
}

FAKE_EXPORT CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device) {
  if (!value) return kErrInvalidValue;
  if (device < 0 || device >= DeviceCount()) return kErrInvalidDevice;
  switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *value = 9; return 0;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *value = 0; return 0;
    case 1: *value = 1024; return 0;  // CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK
    case 10: *value = 32; return 0;   // CU_DEVICE_ATTRIBUTE_WARP_SIZE
    case 16: *value = 132; return 0;  // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT (H200)
    default:
      Report("cuDeviceGetAttribute: attribute %d is not simulated (add it to fake_cuda.cc)", attribute);
      return kErrInvalidValue;
  }
}

FAKE_EXPORT CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice device) {
  if (!bytes) return kErrInvalidValue;
  if (device < 0 || device >= DeviceCount()) return kErrInvalidDevice;
  *bytes = TotalMemory();
  return 0;
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice device) {
  if (!ctx) return kErrInvalidValue;
  if (device < 0 || device >= DeviceCount()) return kErrInvalidDevice;
  std::lock_guard<std::mutex> lock(gMu);
  ++gPrimaryRetains;
  gPrimaryCtx.device = device;
  *ctx = &gPrimaryCtx;
  return 0;
}

FAKE_EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice device) {
  if (device < 0 || device >= DeviceCount()) return kErrInvalidDevice;
  std::lock_guard<std::mutex> lock(gMu);
  if (gPrimaryRetains == 0) return kErrInvalidContext;  // released more often than retained
  --gPrimaryRetains;
  return 0;
}

FAKE_EXPORT CUresult cuCtxSetCurrent(CUcontext ctx) {
  if (const int s = gSticky.load()) return s;
  return ctx == nullptr || ctx == &gPrimaryCtx ? 0 : kErrInvalidContext;
}

FAKE_EXPORT CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  if (const int s = gSticky.load()) return s;
  if (!module || !image) return kErrInvalidValue;
  const char* text = static_cast<const char*>(image);
  // A cubin (ELF) or fatbinary is not what the engine loads; only PTX text is simulated.
  if (StartsWith(text, "\x7f" "ELF") || StartsWith(text, "\x50\xed\x55\xba")) return kErrInvalidImage;
  if (!std::strstr(text, ".entry")) return kErrInvalidImage;
  *module = new CUmod_st{text};
  return 0;
}

FAKE_EXPORT CUresult cuModuleUnload(CUmodule module) {
  if (!module) return kErrInvalidHandle;
  {
    std::lock_guard<std::mutex> lock(gMu);
    for (auto it = gFunctions.begin(); it != gFunctions.end();) {
      auto* f = static_cast<CUfunction>(const_cast<void*>(*it));
      if (f->module == module) {
        delete f;
        it = gFunctions.erase(it);
      } else {
        ++it;
      }
    }
  }
  delete module;
  if (const int s = gSticky.load()) return s;
  return 0;
}

FAKE_EXPORT CUresult cuModuleGetFunction(CUfunction* function, CUmodule module, const char* name) {
  if (const int s = gSticky.load()) return s;
  if (!function || !module || !name) return kErrInvalidValue;
  std::string types;
  if (!PtxParams(module->ptx, name, &types)) return kErrNotFound;
  const KernelDef* def = nullptr;
  for (const auto& k : kKernels)
    if (std::strcmp(k.name, name) == 0) def = &k;
  if (!def) {
    Report("cuModuleGetFunction: the PTX has kernel %s but fake_cuda.cc has no host version of it", name);
    return kErrNotFound;
  }
  const std::string expected = ExpectedPtxParams(def->params);
  if (types != expected) {
    Report("cuModuleGetFunction: %s takes (%s) in the PTX but (%s) in fake_cuda.cc", name, types.c_str(),
           expected.c_str());
    return kErrNotFound;
  }
  auto* f = new CUfunc_st{def, module};
  std::lock_guard<std::mutex> lock(gMu);
  gFunctions.insert(f);
  *function = f;
  return 0;
}

FAKE_EXPORT CUresult cuLaunchKernel(CUfunction f, unsigned gridX, unsigned gridY, unsigned gridZ, unsigned blockX,
                                    unsigned blockY, unsigned blockZ, unsigned sharedBytes, cudaStream_t stream,
                                    void** kernelParams, void** extra) {
  (void)sharedBytes;
  if (const int s = gSticky.load()) return s;
  if (!Live(gFunctions, f) || !StreamOk(stream)) return kErrInvalidHandle;
  const long long nth = ++gLaunches;
  if (nth == EnvInt("FAKE_CUDA_STICKY_AFTER", 0)) {
    Report("launch %lld (%s): simulated device fault (FAKE_CUDA_STICKY_AFTER)", nth, f->def->name);
    LoseDevice();
    return kErrIllegalAddress;
  }
  if (gridX == 0 || gridY == 0 || gridZ == 0 || blockX == 0 || blockY == 0 || blockZ == 0 ||
      static_cast<unsigned long long>(blockX) * blockY * blockZ > 1024)
    return kErrInvalidValue;
  if (gridY != 1 || gridZ != 1 || blockY != 1 || blockZ != 1) {
    Report("%s: launched with grid %ux%ux%u, block %ux%ux%u; kernels.cu uses x only", f->def->name, gridX, gridY,
           gridZ, blockX, blockY, blockZ);
    return kErrInvalidValue;
  }
  if (f->def->blockSum && blockX != kThreads) {
    Report("%s: blockDim.x = %u, but its BlockSum needs %d threads", f->def->name, blockX, kThreads);
    return kErrInvalidValue;
  }
  if (!kernelParams || extra) {
    Report("%s: only kernelParams are simulated (extra must be null)", f->def->name);
    return kErrInvalidValue;
  }
  // The argument values are read at the launch, as CUDA does; the kernel runs with the stream.
  struct Args {
    uint64_t values[16] = {};
    void* ptrs[16] = {};
  };
  auto args = std::make_shared<Args>();
  const size_t count = std::strlen(f->def->params);
  if (count > 16) {
    Report("%s: %zu parameters; fake_cuda.cc's launch keeps at most 16", f->def->name, count);
    return kErrInvalidValue;
  }
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(&args->values[i], kernelParams[i], f->def->params[i] == 'i' ? 4 : 8);
    args->ptrs[i] = &args->values[i];
  }
  const KernelDef* def = f->def;
  Submit(stream, [def, gridX, args] {
    if (def->run(Launch{def->name, gridX, args->ptrs}) == kErrIllegalAddress) LoseDevice();
  });
  return 0;
}

FAKE_EXPORT CUresult cuGetErrorString(CUresult error, const char** text) {
  if (!text) return kErrInvalidValue;
  *text = ErrorText(error);
  if (*text) return 0;
  *text = "unrecognized error code";  // CUDA leaves NULL here; a string is kinder to the caller
  return kErrInvalidValue;
}

// =============================================================================================
// libcublas (v2 API, column-major; alpha and beta are host pointers)
// =============================================================================================

FAKE_EXPORT cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (gSticky.load()) return kCublasInternalError;
  if (!handle) return kCublasInvalidValue;
  if (DeviceCount() == 0) return kCublasNotInitialized;
  *handle = new cublasContext{};
  return 0;
}

FAKE_EXPORT cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (!handle) return kCublasNotInitialized;
  delete handle;
  return gSticky.load() ? kCublasInternalError : 0;
}

FAKE_EXPORT cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version) {
  (void)handle;  // cuBLAS does not need one here either
  if (gSticky.load()) return kCublasInternalError;
  if (!version) return kCublasInvalidValue;
  *version = 130100;
  return 0;
}

FAKE_EXPORT cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (const int s = CublasEnter(handle)) return s;
  handle->stream = stream;
  return 0;
}

FAKE_EXPORT cublasStatus_t cublasSetMathMode(cublasHandle_t handle, int mode) {
  if (const int s = CublasEnter(handle)) return s;
  handle->mathMode = mode;  // recorded only: the CPU has no TF32
  return 0;
}

FAKE_EXPORT cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                          const float* alpha, const float* A, int lda, const float* B, int ldb,
                                          const float* beta, float* C, int ldc) {
  return GemmImpl("cublasSgemm_v2", handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                  cblas_sgemm);
}

FAKE_EXPORT cublasStatus_t cublasDgemm_v2(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                          const double* alpha, const double* A, int lda, const double* B, int ldb,
                                          const double* beta, double* C, int ldc) {
  return GemmImpl("cublasDgemm_v2", handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc,
                  cblas_dgemm);
}

FAKE_EXPORT cublasStatus_t cublasDsyrk_v2(cublasHandle_t handle, int uplo, int trans, int n, int k,
                                          const double* alpha, const double* A, int lda, const double* beta,
                                          double* C, int ldc) {
  if (const int s = CublasEnter(handle)) return s;
  if ((uplo != CUBLAS_FILL_MODE_LOWER && uplo != CUBLAS_FILL_MODE_UPPER) || trans < 0 || trans > 2 || n < 0 || k < 0 ||
      !alpha || !beta)
    return kCublasInvalidValue;
  const int aRows = trans == CUBLAS_OP_N ? n : k, aCols = trans == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, aRows) || ldc < std::max(1, n)) return kCublasInvalidValue;
  if (n == 0) return 0;
  if ((k > 0 && *alpha != 0.0 && !Operand("cublasDsyrk_v2", "A", A, Span(aRows, aCols, lda) * sizeof(double))) ||
      !Operand("cublasDsyrk_v2", "C", C, Span(n, n, ldc) * sizeof(double)))
    return kCublasExecutionFailed;
  const double al = *alpha, be = *beta;
  Submit(handle->stream, [=] {
    if (be == 0.0) {  // only the referenced triangle, as cuBLAS
      for (int j = 0; j < n; ++j) {
        const int lo = uplo == CUBLAS_FILL_MODE_LOWER ? j : 0, hi = uplo == CUBLAS_FILL_MODE_LOWER ? n : j + 1;
        for (int i = lo; i < hi; ++i) C[static_cast<size_t>(j) * ldc + i] = 0.0;
      }
    }
    cblas_dsyrk(CblasColMajor, uplo == CUBLAS_FILL_MODE_LOWER ? CblasLower : CblasUpper,
                trans == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, n, k, al, A, lda, be, C, ldc);
  });
  return 0;
}

// =============================================================================================
// libcusolver (dense, double). devInfo is device memory (here: host memory like all of it).
// =============================================================================================

FAKE_EXPORT cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle) {
  if (gSticky.load()) return kCusolverInternalError;
  if (!handle) return kCusolverInvalidValue;
  if (DeviceCount() == 0) return kCusolverNotInitialized;
  *handle = new cusolverDnContext{};
  return 0;
}

FAKE_EXPORT cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle) {
  if (!handle) return kCusolverNotInitialized;
  delete handle;
  return gSticky.load() ? kCusolverInternalError : 0;
}

FAKE_EXPORT cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream) {
  if (const int s = CusolverEnter(handle)) return s;
  handle->stream = stream;
  return 0;
}

FAKE_EXPORT cusolverStatus_t cusolverGetVersion(int* version) {
  if (gSticky.load()) return kCusolverInternalError;
  if (!version) return kCusolverInvalidValue;
  *version = 12000;
  return 0;
}

FAKE_EXPORT cusolverStatus_t cusolverDnDsyevd_bufferSize(cusolverDnHandle_t handle, int jobz, int uplo, int n,
                                                         const double* A, int lda, const double* W, int* lwork) {
  (void)A;
  (void)W;
  if (const int s = CusolverEnter(handle)) return s;
  if ((jobz != 0 && jobz != 1) || (uplo != 0 && uplo != 1) || n < 0 || lda < std::max(1, n) || !lwork)
    return kCusolverInvalidValue;
  *lwork = WorkSize(n);
  return 0;
}

FAKE_EXPORT cusolverStatus_t cusolverDnDsyevd(cusolverDnHandle_t handle, int jobz, int uplo, int n, double* A,
                                              int lda, double* W, double* work, int lwork, int* devInfo) {
  static const char* call = "cusolverDnDsyevd";
  if (const int s = CusolverEnter(handle)) return s;
  if ((jobz != 0 && jobz != 1) || (uplo != 0 && uplo != 1) || n < 0 || lda < std::max(1, n) ||
      lwork < WorkSize(n))
    return kCusolverInvalidValue;
  if (!Operand(call, "devInfo", devInfo, sizeof(int)) || !Operand(call, "A", A, Span(n, n, lda) * sizeof(double)) ||
      !Operand(call, "W", W, static_cast<size_t>(n) * sizeof(double)) ||
      !Operand(call, "work", work, static_cast<size_t>(lwork) * sizeof(double)))
    return kCusolverInternalError;
  return Lapack(
      handle, call,
      [=]() -> lapack_int {
        return n == 0 ? 0 : LAPACKE_dsyevd(LAPACK_COL_MAJOR, jobz == 1 ? 'V' : 'N', uplo == 0 ? 'L' : 'U', n, A, lda, W);
      },
      devInfo);
}

FAKE_EXPORT cusolverStatus_t cusolverDnDgeqrf_bufferSize(cusolverDnHandle_t handle, int m, int n, double* A, int lda,
                                                         int* lwork) {
  (void)A;
  if (const int s = CusolverEnter(handle)) return s;
  if (m < 0 || n < 0 || lda < std::max(1, m) || !lwork) return kCusolverInvalidValue;
  *lwork = WorkSize(n);
  return 0;
}

FAKE_EXPORT cusolverStatus_t cusolverDnDgeqrf(cusolverDnHandle_t handle, int m, int n, double* A, int lda,
                                              double* TAU, double* work, int lwork, int* devInfo) {
  static const char* call = "cusolverDnDgeqrf";
  if (const int s = CusolverEnter(handle)) return s;
  if (m < 0 || n < 0 || lda < std::max(1, m) || lwork < WorkSize(n)) return kCusolverInvalidValue;
  if (!Operand(call, "devInfo", devInfo, sizeof(int)) || !Operand(call, "A", A, Span(m, n, lda) * sizeof(double)) ||
      !Operand(call, "TAU", TAU, static_cast<size_t>(std::min(m, n)) * sizeof(double)) ||
      !Operand(call, "work", work, static_cast<size_t>(lwork) * sizeof(double)))
    return kCusolverInternalError;
  return Lapack(
      handle, call,
      [=]() -> lapack_int { return m == 0 || n == 0 ? 0 : LAPACKE_dgeqrf(LAPACK_COL_MAJOR, m, n, A, lda, TAU); },
      devInfo);
}

FAKE_EXPORT cusolverStatus_t cusolverDnDorgqr_bufferSize(cusolverDnHandle_t handle, int m, int n, int k,
                                                         const double* A, int lda, const double* tau, int* lwork) {
  (void)A;
  (void)tau;
  if (const int s = CusolverEnter(handle)) return s;
  if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < std::max(1, m) || !lwork) return kCusolverInvalidValue;
  *lwork = WorkSize(n);
  return 0;
}

FAKE_EXPORT cusolverStatus_t cusolverDnDorgqr(cusolverDnHandle_t handle, int m, int n, int k, double* A, int lda,
                                              const double* tau, double* work, int lwork, int* devInfo) {
  static const char* call = "cusolverDnDorgqr";
  if (const int s = CusolverEnter(handle)) return s;
  if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < std::max(1, m) || lwork < WorkSize(n))
    return kCusolverInvalidValue;
  if (!Operand(call, "devInfo", devInfo, sizeof(int)) || !Operand(call, "A", A, Span(m, n, lda) * sizeof(double)) ||
      !Operand(call, "tau", tau, static_cast<size_t>(k) * sizeof(double)) ||
      !Operand(call, "work", work, static_cast<size_t>(lwork) * sizeof(double)))
    return kCusolverInternalError;
  return Lapack(
      handle, call,
      [=]() -> lapack_int { return n == 0 ? 0 : LAPACKE_dorgqr(LAPACK_COL_MAJOR, m, n, k, A, lda, tau); },
      devInfo);
}

// Every export has the signature the engine calls it with (cuda_api.h): a change there that is
// not made here stops this file from compiling.
#define SAME_SIGNATURE(field, symbol)                                                   \
  static_assert(std::is_same_v<decltype(Api::field), decltype(&symbol)>,               \
                "fake_cuda.cc: " #symbol " differs from Api::" #field " in cuda_api.h")
SAME_SIGNATURE(cudaGetDeviceCount, cudaGetDeviceCount);
SAME_SIGNATURE(cudaSetDevice, cudaSetDevice);
SAME_SIGNATURE(cudaSetDeviceFlags, cudaSetDeviceFlags);
SAME_SIGNATURE(cudaRuntimeGetVersion, cudaRuntimeGetVersion);
SAME_SIGNATURE(cudaDriverGetVersion, cudaDriverGetVersion);
SAME_SIGNATURE(cudaMalloc, cudaMalloc);
SAME_SIGNATURE(cudaFree, cudaFree);
SAME_SIGNATURE(cudaHostAlloc, cudaHostAlloc);
SAME_SIGNATURE(cudaFreeHost, cudaFreeHost);
SAME_SIGNATURE(cudaMemcpyAsync, cudaMemcpyAsync);
SAME_SIGNATURE(cudaMemcpy2DAsync, cudaMemcpy2DAsync);
SAME_SIGNATURE(cudaMemsetAsync, cudaMemsetAsync);
SAME_SIGNATURE(cudaMemGetInfo, cudaMemGetInfo);
SAME_SIGNATURE(cudaStreamCreateWithFlags, cudaStreamCreateWithFlags);
SAME_SIGNATURE(cudaStreamDestroy, cudaStreamDestroy);
SAME_SIGNATURE(cudaStreamSynchronize, cudaStreamSynchronize);
SAME_SIGNATURE(cudaStreamWaitEvent, cudaStreamWaitEvent);
SAME_SIGNATURE(cudaEventCreateWithFlags, cudaEventCreateWithFlags);
SAME_SIGNATURE(cudaEventDestroy, cudaEventDestroy);
SAME_SIGNATURE(cudaEventRecord, cudaEventRecord);
SAME_SIGNATURE(cudaEventSynchronize, cudaEventSynchronize);
SAME_SIGNATURE(cudaEventElapsedTime, cudaEventElapsedTime);
SAME_SIGNATURE(cudaGetLastError, cudaGetLastError);
SAME_SIGNATURE(cudaGetErrorString, cudaGetErrorString);
SAME_SIGNATURE(cudaGetErrorName, cudaGetErrorName);
SAME_SIGNATURE(cuInit, cuInit);
SAME_SIGNATURE(cuDeviceGet, cuDeviceGet);
SAME_SIGNATURE(cuDeviceGetName, cuDeviceGetName);
SAME_SIGNATURE(cuDeviceGetAttribute, cuDeviceGetAttribute);
SAME_SIGNATURE(cuDeviceTotalMem, cuDeviceTotalMem_v2);
SAME_SIGNATURE(cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRetain);
SAME_SIGNATURE(cuDevicePrimaryCtxRelease, cuDevicePrimaryCtxRelease_v2);
SAME_SIGNATURE(cuCtxSetCurrent, cuCtxSetCurrent);
SAME_SIGNATURE(cuModuleLoadData, cuModuleLoadData);
SAME_SIGNATURE(cuModuleUnload, cuModuleUnload);
SAME_SIGNATURE(cuModuleGetFunction, cuModuleGetFunction);
SAME_SIGNATURE(cuLaunchKernel, cuLaunchKernel);
SAME_SIGNATURE(cuGetErrorString, cuGetErrorString);
SAME_SIGNATURE(cublasCreate, cublasCreate_v2);
SAME_SIGNATURE(cublasDestroy, cublasDestroy_v2);
SAME_SIGNATURE(cublasGetVersion, cublasGetVersion_v2);
SAME_SIGNATURE(cublasSetStream, cublasSetStream_v2);
SAME_SIGNATURE(cublasSetMathMode, cublasSetMathMode);
SAME_SIGNATURE(cublasSgemm, cublasSgemm_v2);
SAME_SIGNATURE(cublasDgemm, cublasDgemm_v2);
SAME_SIGNATURE(cublasDsyrk, cublasDsyrk_v2);
SAME_SIGNATURE(cusolverDnCreate, cusolverDnCreate);
SAME_SIGNATURE(cusolverDnDestroy, cusolverDnDestroy);
SAME_SIGNATURE(cusolverDnSetStream, cusolverDnSetStream);
SAME_SIGNATURE(cusolverGetVersion, cusolverGetVersion);
SAME_SIGNATURE(cusolverDnDsyevd_bufferSize, cusolverDnDsyevd_bufferSize);
SAME_SIGNATURE(cusolverDnDsyevd, cusolverDnDsyevd);
SAME_SIGNATURE(cusolverDnDgeqrf_bufferSize, cusolverDnDgeqrf_bufferSize);
SAME_SIGNATURE(cusolverDnDgeqrf, cusolverDnDgeqrf);
SAME_SIGNATURE(cusolverDnDorgqr_bufferSize, cusolverDnDorgqr_bufferSize);
SAME_SIGNATURE(cusolverDnDorgqr, cusolverDnDorgqr);

#include "device.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>

namespace cmerge::cuda {
namespace {

#include "kernels.ptx.inc"

const char* const kKernelNames[kKernelCount] = {
    "f32_to_f64",     "col_sumsq_f64", "gather_cols_f64", "gather_cols_f64_to_f32", "fill_random_cols",
    "col_dot_f32",    "scale_cols_f32", "sub_sumsq_f32",  "diff_f32",               "mean2_f32",
    "grad_acc_f32",   "dot_f32",       "sum_f64",         "adam_f32"};

// Errors after which the context is unusable (CUDA's "sticky" errors): the process must restart.
bool IsSticky(int code) {
  switch (code) {
    case 214:  // ECC uncorrectable
    case 226:  // contained (Hopper's error containment)
    case 700:  // illegal address
    case 702:  // launch timeout
    case 710:  // device-side assert
    case 714:  // hardware stack error
    case 715:  // illegal instruction
    case 716:  // misaligned address
    case 717:  // invalid address space
    case 718:  // invalid pc
    case 719:  // launch failure
    case 721:  // tensor memory leak
    case 810:  // MPS client terminated
    case 911:  // external device
    case 999:  // unknown
      return true;
    default:
      return false;
  }
}

}  // namespace

unsigned Blocks(long long n) {
  const long long b = (n + 255) / 256;
  return static_cast<unsigned>(std::clamp<long long>(b, 1, 4096 * 4));
}

void Device::Fail(const std::string& what, int code) {
  const bool sticky = IsSticky(code);
  if (sticky) {
    std::lock_guard<std::mutex> g(poisonMu_);
    if (!poisoned_) poison_ = what;
    poisoned_ = true;
  }
  throw CudaError(what, sticky ? "sticky" : code == cudaErrorMemoryAllocation ? "oom" : "error");
}

void Device::Check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  Fail(std::string(what) + ": " + api.cudaGetErrorName(e) + " (" + api.cudaGetErrorString(e) + ")", e);
}

// A failed cuBLAS/cuSOLVER call does not say whether the context is lost: the stream does.
void Device::CheckBlas(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  const cudaError_t e = api.cudaStreamSynchronize(compute_.stream);
  if (e != cudaSuccess) Check(e, what);
  Fail(std::string(what) + ": cuBLAS status " + std::to_string(s), s == 3 ? cudaErrorMemoryAllocation : -1);
}

void Device::CheckSolver(cusolverStatus_t s, const char* what) {
  if (s == CUSOLVER_STATUS_SUCCESS) return;
  const cudaError_t e = api.cudaStreamSynchronize(compute_.stream);
  if (e != cudaSuccess) Check(e, what);
  Fail(std::string(what) + ": cuSOLVER status " + std::to_string(s), s == 2 ? cudaErrorMemoryAllocation : -1);
}

Device::Device(const Api& a, int ordinal) : api(a) {
  info_.ordinal = ordinal;
  int count = 0;
  const cudaError_t ce = api.cudaGetDeviceCount(&count);
  if (ce != cudaSuccess || count == 0)
    throw CudaError(std::string("no usable CUDA device: ") +
                        (ce != cudaSuccess ? api.cudaGetErrorName(ce) + std::string(" (") + api.cudaGetErrorString(ce) + ")"
                                           : "the driver reports 0 devices"),
                    "error");
  if (ordinal >= count)
    throw CudaError("CUDA device " + std::to_string(ordinal) + " does not exist (" + std::to_string(count) +
                        " device" + (count == 1 ? "" : "s") + ")",
                    "error");
  Check(api.cudaSetDevice(ordinal), "cudaSetDevice");
  // A waiting host thread sleeps instead of spinning a core (the default with fewer GPUs than
  // cores): the daemon shares the host with the model server, and a sync's wake-up costs
  // microseconds. Only a hint: where the context's flags cannot change, the default stays.
  if (api.cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync) != cudaSuccess) api.cudaGetLastError();
  Check(api.cudaFree(nullptr), "cudaFree(0) (context creation)");
  auto drv = [&](CUresult r, const char* what) {
    if (r == CUDA_SUCCESS) return;
    const char* msg = nullptr;
    api.cuGetErrorString(r, &msg);
    Fail(std::string(what) + ": CUresult " + std::to_string(r) + (msg ? std::string(" (") + msg + ")" : ""), r);
  };
  drv(api.cuInit(0), "cuInit");
  CUdevice dev = 0;
  drv(api.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
  char name[256] = {};
  drv(api.cuDeviceGetName(name, sizeof name - 1, dev), "cuDeviceGetName");
  info_.name = name;
  drv(api.cuDeviceGetAttribute(&info_.ccMajor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
  drv(api.cuDeviceGetAttribute(&info_.ccMinor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
  drv(api.cuDeviceTotalMem(&info_.totalBytes, dev), "cuDeviceTotalMem");
  drv(api.cuDevicePrimaryCtxRetain(&ctx_, dev), "cuDevicePrimaryCtxRetain");
  drv(api.cuCtxSetCurrent(ctx_), "cuCtxSetCurrent");
  Check(api.cudaDriverGetVersion(&info_.driverVersion), "cudaDriverGetVersion");
  Check(api.cudaRuntimeGetVersion(&info_.runtimeVersion), "cudaRuntimeGetVersion");
  drv(api.cuModuleLoadData(&module_, kKernelsPtx), "cuModuleLoadData (JIT of the engine's kernels)");
  for (int k = 0; k < kKernelCount; ++k) drv(api.cuModuleGetFunction(&kernels_[k], module_, kKernelNames[k]), kKernelNames[k]);
  if (const char* e = std::getenv("CMERGE_CUDA_STAGE_BYTES"); e && *e) {
    const long long v = std::atoll(e);
    if (v >= 256) stageBytes_ = static_cast<size_t>(v);
  }
  MakeLane(compute_);
  MakeLane(copy_);
  CheckBlas(api.cublasCreate(&blas_), "cublasCreate");
  CheckBlas(api.cublasSetStream(blas_, compute_.stream), "cublasSetStream");
  CheckBlas(api.cublasGetVersion(blas_, &info_.cublasVersion), "cublasGetVersion");
  CheckSolver(api.cusolverDnCreate(&solver_), "cusolverDnCreate");
  CheckSolver(api.cusolverDnSetStream(solver_, compute_.stream), "cusolverDnSetStream");
  CheckSolver(api.cusolverGetVersion(&info_.cusolverVersion), "cusolverGetVersion");
}

void Device::MakeLane(Lane& lane) {
  Check(api.cudaStreamCreateWithFlags(&lane.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  for (int i = 0; i < 2; ++i) {
    Check(api.cudaHostAlloc(reinterpret_cast<void**>(&lane.stage[i]), stageBytes_, cudaHostAllocDefault),
          "cudaHostAlloc");
    Check(api.cudaEventCreateWithFlags(&lane.stageDone[i], cudaEventDisableTiming), "cudaEventCreate");
  }
}

// Devices live until the process exits: handles, the JIT-compiled module and pinned buffers are
// made once (~1 s) instead of per merge. Engines free their own device memory on close().
Device& Device::Get(const Api& api, int ordinal) {
  static std::mutex m;
  static std::map<int, std::unique_ptr<Device>> devices;
  std::lock_guard<std::mutex> lock(m);
  auto& d = devices[ordinal];
  if (!d) d.reset(new Device(api, ordinal));
  return *d;
}

std::unique_lock<std::mutex> Device::Begin() {
  std::unique_lock<std::mutex> lock(mutex_);
  MakeCurrent();  // jobs run on the libuv pool's threads
  return lock;
}

std::unique_lock<std::mutex> Device::BeginStaging() {
  std::unique_lock<std::mutex> lock(copyMutex_);
  MakeCurrent();
  return lock;
}

void Device::Stage(void* dev, const void* host, size_t bytes) { UploadOn(copy_, dev, host, bytes); }

cudaEvent_t Device::RecordOn(cudaStream_t stream, const char* what) {
  cudaEvent_t e = nullptr;
  Check(api.cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  const cudaError_t r = api.cudaEventRecord(e, stream);
  if (r != cudaSuccess) {
    api.cudaEventDestroy(e);
    Check(r, what);
  }
  return e;
}

cudaEvent_t Device::StagingDone() { return RecordOn(copy_.stream, "cudaEventRecord (staging)"); }

void Device::AwaitStaging(cudaEvent_t done) {
  Check(api.cudaStreamWaitEvent(compute_.stream, done, 0), "cudaStreamWaitEvent (staging)");
}

void Device::SettleStaging() { api.cudaStreamSynchronize(copy_.stream); }

cudaEvent_t Device::ComputeDone() { return RecordOn(compute_.stream, "cudaEventRecord (computed)"); }

void Device::Fetch(void* host, const void* dev, size_t bytes, cudaEvent_t computed) {
  Check(api.cudaStreamWaitEvent(copy_.stream, computed, 0), "cudaStreamWaitEvent (fetch)");
  DownloadOn(copy_, host, dev, bytes);
}

void Device::MakeCurrent() {
  if (poisoned_) {
    std::lock_guard<std::mutex> g(poisonMu_);
    throw CudaError("the CUDA device is lost for this process: " + poison_, "sticky");
  }
  Check(api.cudaSetDevice(info_.ordinal), "cudaSetDevice");
  const CUresult r = api.cuCtxSetCurrent(ctx_);
  if (r != CUDA_SUCCESS) Fail("cuCtxSetCurrent: CUresult " + std::to_string(r), r);
}

void Device::SetMathMode(bool tf32) {
  CheckBlas(api.cublasSetMathMode(blas_, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

void Device::Launch(Kernel k, unsigned gridX, void** args) {
  if (gridX == 0) return;
  const CUresult r = api.cuLaunchKernel(kernels_[k], gridX, 1, 1, 256, 1, 1, 0, compute_.stream, args, nullptr);
  if (r != CUDA_SUCCESS) {
    const char* msg = nullptr;
    api.cuGetErrorString(r, &msg);
    Fail(std::string("launch of ") + kKernelNames[k] + ": CUresult " + std::to_string(r) + (msg ? std::string(" (") + msg + ")" : ""), r);
  }
}

void Device::Sync() { Check(api.cudaStreamSynchronize(compute_.stream), "cudaStreamSynchronize"); }

void Device::UploadOn(Lane& lane, void* dev, const void* host, size_t bytes) {
  const char* src = static_cast<const char*>(host);
  char* dst = static_cast<char*>(dev);
  for (size_t off = 0, i = 0; off < bytes; off += stageBytes_, ++i) {
    const int b = static_cast<int>(i & 1);
    const size_t len = std::min(stageBytes_, bytes - off);
    Check(api.cudaEventSynchronize(lane.stageDone[b]), "cudaEventSynchronize");  // its last copy is done
    std::memcpy(lane.stage[b], src + off, len);
    Check(api.cudaMemcpyAsync(dst + off, lane.stage[b], len, cudaMemcpyHostToDevice, lane.stream),
          "cudaMemcpyAsync (upload)");
    Check(api.cudaEventRecord(lane.stageDone[b], lane.stream), "cudaEventRecord");
  }
}

void Device::DownloadOn(Lane& lane, void* host, const void* dev, size_t bytes) {
  char* dst = static_cast<char*>(host);
  const char* src = static_cast<const char*>(dev);
  size_t prevOff = 0, prevLen = 0;
  int prev = -1;
  for (size_t off = 0, i = 0; off < bytes; off += stageBytes_, ++i) {
    const int b = static_cast<int>(i & 1);
    const size_t len = std::min(stageBytes_, bytes - off);
    Check(api.cudaMemcpyAsync(lane.stage[b], src + off, len, cudaMemcpyDeviceToHost, lane.stream),
          "cudaMemcpyAsync (download)");
    Check(api.cudaEventRecord(lane.stageDone[b], lane.stream), "cudaEventRecord");
    if (prev >= 0) {
      Check(api.cudaEventSynchronize(lane.stageDone[prev]), "cudaEventSynchronize");
      std::memcpy(dst + prevOff, lane.stage[prev], prevLen);
    }
    prev = b, prevOff = off, prevLen = len;
  }
  if (prev >= 0) {
    Check(api.cudaEventSynchronize(lane.stageDone[prev]), "cudaEventSynchronize");
    std::memcpy(dst + prevOff, lane.stage[prev], prevLen);
  }
}

void* Session::Alloc(size_t bytes) {
  if (bytes == 0) bytes = 1;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (maxBytes > 0 && inUse_ + bytes > maxBytes)
      throw CudaError("device memory limit: " + std::to_string(inUse_ + bytes) + " bytes needed, max_memory is " +
                          std::to_string(maxBytes),
                      "oom");
    inUse_ += bytes;  // counted before cudaMalloc: a concurrent Alloc sees it against max_memory
  }
  void* p = nullptr;
  const cudaError_t e = dev.api.cudaMalloc(&p, bytes);
  std::lock_guard<std::mutex> g(mu_);
  if (e != cudaSuccess) {
    inUse_ -= bytes;
    dev.Check(e, "cudaMalloc");
  }
  peak_ = std::max(peak_, inUse_);
  return p;
}

void Session::Free(void* p, size_t bytes) {
  if (bytes == 0) bytes = 1;
  // cudaFree is not ordered with the streams: let the compute stream's work that may read the
  // buffer finish first (a Fetch on the copy stream ends with a host wait for its last chunk).
  // Never throws (destructors); a lost device shows at the next checked call.
  dev.api.cudaStreamSynchronize(dev.stream());
  dev.api.cudaFree(p);
  std::lock_guard<std::mutex> g(mu_);
  inUse_ -= bytes;
}

void Session::AddGpuMs(double ms) {
  std::lock_guard<std::mutex> g(mu_);
  gpuMs_ += ms;
}

Session::Stats Session::Read() {
  std::lock_guard<std::mutex> g(mu_);
  return {inUse_, peak_, gpuMs_};
}

void Session::ResetStats() {
  std::lock_guard<std::mutex> g(mu_);
  gpuMs_ = 0;
  peak_ = inUse_;
}

JobTimer::JobTimer(Session& s) : s_(s) {
  s.dev.Check(s.dev.api.cudaEventCreateWithFlags(&start_, cudaEventDefault), "cudaEventCreate");
  s.dev.Check(s.dev.api.cudaEventCreateWithFlags(&stop_, cudaEventDefault), "cudaEventCreate");
  s.dev.Check(s.dev.api.cudaEventRecord(start_, s.dev.stream()), "cudaEventRecord");
}

void JobTimer::Stop() {
  auto& api = s_.dev.api;
  s_.dev.Check(api.cudaEventRecord(stop_, s_.dev.stream()), "cudaEventRecord");
  s_.dev.Check(api.cudaEventSynchronize(stop_), "cudaEventSynchronize");
  float ms = 0;
  s_.dev.Check(api.cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime");
  s_.AddGpuMs(ms);
  stopped_ = true;
}

JobTimer::~JobTimer() {
  auto& api = s_.dev.api;
  if (start_) api.cudaEventDestroy(start_);
  if (stop_) api.cudaEventDestroy(stop_);
}

}  // namespace cmerge::cuda

// One CUDA device shared by every engine of the process (handles, two streams, kernels, pinned
// staging), and the per-engine Session that owns device memory and counts its time and peak.
#pragma once
#include <cstddef>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda_api.h"

namespace cmerge::cuda {

// kind: "sticky" (the context is lost: every later call fails; the process must restart),
// "oom" (device memory), "error" (anything else: the job fails, the engine stays usable).
struct CudaError : std::runtime_error {
  CudaError(const std::string& what, const char* kind) : std::runtime_error(what), kind(kind) {}
  const char* kind;
};

enum Kernel {
  kF32ToF64,
  kColSumsqF64,
  kGatherColsF64,
  kGatherColsF64ToF32,
  kFillRandomCols,
  kColDotF32,
  kScaleColsF32,
  kSubSumsqF32,
  kDiffF32,
  kMean2F32,
  kGradAccF32,
  kDotF32,
  kSumF64,
  kAdamF32,
  kKernelCount
};

struct DeviceInfo {
  std::string name;
  int ordinal = 0, ccMajor = 0, ccMinor = 0;
  size_t totalBytes = 0;
  int driverVersion = 0, runtimeVersion = 0, cublasVersion = 0, cusolverVersion = 0;
};

// A stream with its two pinned staging buffers: the host copy of one chunk overlaps the DMA of
// the other.
struct Lane {
  cudaStream_t stream = nullptr;
  char* stage[2] = {nullptr, nullptr};
  cudaEvent_t stageDone[2] = {nullptr, nullptr};
};

class Device {
 public:
  // The process's device `ordinal`, initialised on first use; throws CudaError.
  static Device& Get(const Api& api, int ordinal);
  const Api& api;
  const DeviceInfo& info() const { return info_; }
  cublasHandle_t blas() const { return blas_; }
  cusolverDnHandle_t solver() const { return solver_; }
  cudaStream_t stream() const { return compute_.stream; }
  // Jobs compute one at a time (the lock) with the device's context current on the calling thread.
  std::unique_lock<std::mutex> Begin();
  // The copy stream, one job at a time: a job uploads its inputs here (Stage) while another job
  // holds Begin(), then hands them over with StagingDone/AwaitStaging (docs/cuda-engine.md#overlap).
  std::unique_lock<std::mutex> BeginStaging();
  void Stage(void* dev, const void* host, size_t bytes);
  // An event recorded on the copy stream after the staged uploads (the caller destroys it).
  cudaEvent_t StagingDone();
  // The compute stream waits (on the device) for the uploads before that event.
  void AwaitStaging(cudaEvent_t done);
  // The host waits for every upload issued so far: a failed job's, before its buffers are freed
  // (cudaFree is not ordered with the copy stream). Never throws.
  void SettleStaging();
  // An event recorded on the compute stream after the job's work (the caller destroys it).
  cudaEvent_t ComputeDone();
  // Under BeginStaging: the copy stream waits (on the device) for `computed`, then downloads
  // through its own pinned pair, while the next job computes.
  void Fetch(void* host, const void* dev, size_t bytes, cudaEvent_t computed);
  // The device's context current on the calling thread, without the lock: for queries that must
  // not wait for a running job (cudaMemGetInfo from the JavaScript thread).
  void MakeCurrent();
  void Check(cudaError_t e, const char* what);
  void CheckBlas(cublasStatus_t s, const char* what);
  void CheckSolver(cusolverStatus_t s, const char* what);
  void Launch(Kernel k, unsigned gridX, void** args);
  // On the compute stream, through its lane's pinned buffers.
  void Upload(void* dev, const void* host, size_t bytes) { UploadOn(compute_, dev, host, bytes); }
  void Download(void* host, const void* dev, size_t bytes) { DownloadOn(compute_, host, dev, bytes); }
  void Sync();
  bool poisoned() const { return poisoned_; }
  void SetMathMode(bool tf32);

 private:
  Device(const Api& api, int ordinal);
  [[noreturn]] void Fail(const std::string& what, int code);
  void MakeLane(Lane& lane);
  void UploadOn(Lane& lane, void* dev, const void* host, size_t bytes);
  void DownloadOn(Lane& lane, void* host, const void* dev, size_t bytes);
  cudaEvent_t RecordOn(cudaStream_t stream, const char* what);
  DeviceInfo info_;
  CUcontext ctx_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  CUmodule module_ = nullptr;
  CUfunction kernels_[kKernelCount] = {};
  // 16 MiB per staging buffer; CMERGE_CUDA_STAGE_BYTES sets another size (the tests make it small
  // so that their small tensors take the several-chunk paths).
  size_t stageBytes_ = size_t{16} << 20;
  Lane compute_, copy_;
  std::mutex mutex_, copyMutex_;
  std::atomic<bool> poisoned_{false};  // read without the lock by MakeCurrent
  std::string poison_;  // under poisonMu_: jobs and MakeCurrent's callers may fail at once
  std::mutex poisonMu_;
};

// Device memory and time of one engine (one JS CudaEngine). A job allocates its inputs under
// BeginStaging() while another computes under Begin(): the counters have their own lock.
class Session {
 public:
  Session(Device& dev, size_t maxBytes, bool tf32) : dev(dev), maxBytes(maxBytes), tf32(tf32) {}
  Device& dev;
  const size_t maxBytes;  // 0: no limit of our own
  const bool tf32;
  void* Alloc(size_t bytes);
  void Free(void* p, size_t bytes);
  void AddGpuMs(double ms);
  struct Stats {
    size_t inUse, peak;
    double gpuMs;
  };
  Stats Read();
  void ResetStats();  // gpuMs to 0, peak to what is in use

 private:
  std::mutex mu_;
  size_t inUse_ = 0, peak_ = 0;
  double gpuMs_ = 0;
};

// RAII device buffer of `count` elements of T.
template <typename T>
class Buf {
 public:
  Buf() = default;
  Buf(Session& s, size_t count) : s_(&s), n_(count) { p_ = static_cast<T*>(s.Alloc(count * sizeof(T))); }
  Buf(Buf&& o) noexcept : s_(o.s_), p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
  Buf& operator=(Buf&& o) noexcept {
    reset();
    s_ = o.s_, p_ = o.p_, n_ = o.n_;
    o.p_ = nullptr;
    return *this;
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { reset(); }
  void reset() {
    if (p_) s_->Free(p_, n_ * sizeof(T));
    p_ = nullptr;
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  Session* s_ = nullptr;
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Times a job on the device's stream with two events, adding to the session's gpuMs.
class JobTimer {
 public:
  explicit JobTimer(Session& s);
  ~JobTimer();
  void Stop();

 private:
  Session& s_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
  bool stopped_ = false;
};

unsigned Blocks(long long n);  // grid for the grid-stride kernels

}  // namespace cmerge::cuda

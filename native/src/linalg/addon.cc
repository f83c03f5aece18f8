// N-API surface of cmerge_linalg: jobs run on the libuv pool (Napi::AsyncWorker) and resolve
// Promises, so the event loop stays free while OpenBLAS works.
#include <napi.h>

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <malloc.h>
#include <condition_variable>
#include <mutex>
#include <new>
#include <string>

#include "big_alloc.h"
#include "svd.h"

namespace {

// Jobs run in `lanes` at once (default 1). With one lane, a job gets every BLAS thread. With more,
// each job runs single-threaded OpenBLAS (its thread count is process-wide, so it cannot be split
// per job): the symmetric eigensolver's tridiagonal reduction is memory-bound and scales poorly,
// so two single-threaded SVDs side by side do ~1.6x the work of one two-threaded SVD (measured).
// A `solo` job (the engine marks large ones) waits until nothing runs, runs alone with every BLAS
// thread and holds the others back: callers do not overlap large matrices anyway (memory), and one
// two-threaded job on them is ~1.5x faster than a single-threaded one.
// openblas_set_num_threads only changes while no job runs.
std::mutex gateMutex;
std::condition_variable gateCv;
int running = 0;
bool soloRunning = false;
std::atomic<int> lanes{1};
std::atomic<int> wantedThreads{0};  // 0: as OpenBLAS was configured at load (OPENBLAS_NUM_THREADS)
int configuredThreads = 1;          // set in Init

int AllThreads() {
  const int w = wantedThreads.load();
  return w > 0 ? w : configuredThreads;
}

class Lane {
 public:
  explicit Lane(bool solo) : solo_(solo) {
    std::unique_lock<std::mutex> lock(gateMutex);
    gateCv.wait(lock, [solo] { return solo ? running == 0 : !soloRunning && running < lanes.load(); });
    soloRunning = solo;
    if (running++ == 0) {
      const int t = lanes.load() > 1 && !solo ? 1 : AllThreads();
      if (t != openblas_get_num_threads()) openblas_set_num_threads(t);
    }
  }
  ~Lane() {
    std::lock_guard<std::mutex> lock(gateMutex);
    --running;
    if (solo_) soloRunning = false;
    gateCv.notify_all();
  }

 private:
  bool solo_;
};

// Output memory is allocated on the worker thread (no zero-fill on the JS thread; huge pages, see
// big_alloc.h) and handed to JS as an external ArrayBuffer that frees it; V8 is told its size so GC
// pressure stays honest.
template <typename T>
Napi::TypedArrayOf<T> Adopt(Napi::Env env, T*& data, size_t len) {
  const size_t bytes = len * sizeof(T);
  T* p = data;
  data = nullptr;
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
  auto ab = Napi::ArrayBuffer::New(env, p, bytes, [bytes](Napi::Env e, void* q) {
    cmerge::BigFree(q, bytes);
    Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(bytes));
  });
  return Napi::TypedArrayOf<T>::New(env, len, ab, 0);
}

template <typename T>
T* Alloc(size_t len) {
  return static_cast<T*>(cmerge::BigAlloc(len * sizeof(T)));
}

template <typename T>
void Free(T* p, size_t len) {
  cmerge::BigFree(p, len * sizeof(T));
}

int Dim(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 0x7fffffff && std::floor(d) == d))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a positive 32-bit integer");
  return static_cast<int>(d);
}

Napi::Float32Array F32(const Napi::CallbackInfo& info, size_t i, const char* name, double expected) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  auto arr = info[i].As<Napi::Float32Array>();
  if (static_cast<double>(arr.ElementLength()) != expected)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(arr.ElementLength()) +
                                                " elements, expected " + std::to_string(static_cast<size_t>(expected)));
  return arr;
}

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, bool solo)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), solo_(solo) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() final {
    try {
      Lane lane(solo_);
      Run();
    } catch (const std::bad_alloc&) {
      SetError("out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  virtual void Run() = 0;
  void OnError(const Napi::Error& e) final { deferred_.Reject(e.Value()); }
  Napi::Promise::Deferred deferred_;

 private:
  bool solo_;
};

class SgemmWorker : public PromiseWorker {
 public:
  SgemmWorker(Napi::Env env, Napi::Float32Array a, Napi::Float32Array b, int m, int k, int n, bool ta, bool tb,
              bool solo)
      : PromiseWorker(env, solo), aRef_(Napi::Persistent(a)), bRef_(Napi::Persistent(b)), a_(a.Data()), b_(b.Data()),
        m_(m), k_(k), n_(n), ta_(ta), tb_(tb) {}
  ~SgemmWorker() override { Free(c_, static_cast<size_t>(m_) * n_); }

 protected:
  void Run() override {
    c_ = Alloc<float>(static_cast<size_t>(m_) * n_);
    cblas_sgemm(CblasRowMajor, ta_ ? CblasTrans : CblasNoTrans, tb_ ? CblasTrans : CblasNoTrans, m_, n_, k_, 1.0f,
                a_, ta_ ? m_ : k_, b_, tb_ ? k_ : n_, 0.0f, c_, n_);
  }
  void OnOK() override { deferred_.Resolve(Adopt(Env(), c_, static_cast<size_t>(m_) * n_)); }

 private:
  // The references keep the inputs alive (and their memory in place) while the worker runs.
  Napi::Reference<Napi::Float32Array> aRef_, bRef_;
  const float *a_, *b_;
  float* c_ = nullptr;
  int m_, k_, n_;
  bool ta_, tb_;
};

class SvdWorker : public PromiseWorker {
 public:
  SvdWorker(Napi::Env env, Napi::Float32Array a, int m, int n, bool solo)
      : PromiseWorker(env, solo), aRef_(Napi::Persistent(a)), a_(a.Data()), m_(m), n_(n), r_(std::min(m, n)) {}
  ~SvdWorker() override {
    Free(u_, static_cast<size_t>(m_) * r_);
    Free(s_, static_cast<size_t>(r_));
    Free(v_, static_cast<size_t>(n_) * r_);
  }

 protected:
  void Run() override {
    u_ = Alloc<float>(static_cast<size_t>(m_) * r_);
    s_ = Alloc<double>(r_);
    v_ = Alloc<float>(static_cast<size_t>(n_) * r_);
    const std::string err = cmerge::SvdGram(a_, m_, n_, u_, s_, v_);
    if (!err.empty()) SetError(err);
  }
  void OnOK() override {
    Napi::Env env = Env();
    auto out = Napi::Object::New(env);
    out.Set("u", Adopt(env, u_, static_cast<size_t>(m_) * r_));
    out.Set("s", Adopt(env, s_, r_));
    out.Set("v", Adopt(env, v_, static_cast<size_t>(n_) * r_));
    deferred_.Resolve(out);
  }

 private:
  Napi::Reference<Napi::Float32Array> aRef_;
  const float* a_;
  float* u_ = nullptr;
  double* s_ = nullptr;
  float* v_ = nullptr;
  int m_, n_, r_;
};

// sgemm(a, b, m, k, n, transA, transB, solo): Promise<Float32Array>, C (m×n) = op(A) op(B), row-major.
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  const int m = Dim(info, 2, "m"), k = Dim(info, 3, "k"), n = Dim(info, 4, "n");
  const bool ta = info[5].ToBoolean(), tb = info[6].ToBoolean();
  auto a = F32(info, 0, "a", static_cast<double>(m) * k);
  auto b = F32(info, 1, "b", static_cast<double>(k) * n);
  auto* w = new SgemmWorker(info.Env(), a, b, m, k, n, ta, tb, info[7].ToBoolean());
  w->Queue();
  return w->Promise();
}

// svd(a, m, n, solo): Promise<{u: Float32Array, s: Float64Array, v: Float32Array}>.
Napi::Value Svd(const Napi::CallbackInfo& info) {
  const int m = Dim(info, 1, "m"), n = Dim(info, 2, "n");
  auto a = F32(info, 0, "a", static_cast<double>(m) * n);
  auto* w = new SvdWorker(info.Env(), a, m, n, info[3].ToBoolean());
  w->Queue();
  return w->Promise();
}

// setThreads(n): applied before the next job (never while one runs).
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  wantedThreads.store(Dim(info, 0, "threads"));
  return info.Env().Undefined();
}

// getThreads(): the pending setting, else what OpenBLAS took from OPENBLAS_NUM_THREADS (or the cores).
Napi::Value GetThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), AllThreads());
}

// setLanes(n): how many jobs may run at once (each single-threaded when n > 1).
Napi::Value SetLanes(const Napi::CallbackInfo& info) {
  lanes.store(Dim(info, 0, "lanes"));
  gateCv.notify_all();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Large blocks always from mmap, so freeing them returns the pages: glibc's dynamic threshold
  // otherwise rises to 32 MB after the first big free, and the SVD panels, the blocked products'
  // outputs and Node's ArrayBuffers then come from per-thread arenas that keep their peak
  // (measured: ~400 MB of retained RSS over a 1B-parameter OPCM step). Setting it fixes it.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  configuredThreads = std::max(1, openblas_get_num_threads());
  exports.Set("sgemm", Napi::Function::New(env, Sgemm, "sgemm"));
  exports.Set("svd", Napi::Function::New(env, Svd, "svd"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("setLanes", Napi::Function::New(env, SetLanes, "setLanes"));
  exports.Set("nullTolerance", Napi::Number::New(env, cmerge::kNullTol));
  return exports;
}

}  // namespace

NODE_API_MODULE(cmerge_linalg, Init)

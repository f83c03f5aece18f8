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
#include <vector>

#include "big_alloc.h"
#include "dop.h"
#include "opcm.h"
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

// dopAdam(w, pa, pb, m, n, opts, solo): DOP's Adam loop (dop.h) with w updated in place.
// pa/pb: {w: Float32Array, left: side | null, right: side | null}, side: {dense: Float32Array | null,
// f: Float32Array, g: Float32Array, k}; opts: {numSteps, mgda, ema, emaBeta, alpha, stepSize:
// Float64Array, bc2sqrt: Float64Array, stop?: Int32Array}. Resolves {lossA, lossB, weightA,
// weightB, stopped}.
class DopWorker : public PromiseWorker {
 public:
  DopWorker(Napi::Env env, bool solo) : PromiseWorker(env, solo) {}
  // Keeps a typed array alive for the worker's life and returns its data.
  template <typename A>
  auto Keep(A arr) {
    refs_.emplace_back(Napi::Persistent(arr.template As<Napi::Object>()));
    return arr.Data();
  }
  cmerge::DopSide Side(const Napi::Value& v, int rows, int other, const char* name) {
    cmerge::DopSide s;
    if (v.IsNull() || v.IsUndefined()) return s;
    if (!v.IsObject()) throw Napi::TypeError::New(Env(), std::string(name) + " must be an object or null");
    auto o = v.As<Napi::Object>();
    const Napi::Value kv = o.Get("k");
    if (!kv.IsNumber()) throw Napi::TypeError::New(Env(), std::string(name) + ".k must be a number");
    const double kd = kv.As<Napi::Number>().DoubleValue();
    if (!(kd >= 1 && kd <= rows && std::floor(kd) == kd))
      throw Napi::RangeError::New(Env(), std::string(name) + ".k out of range");
    s.present = true;
    s.k = static_cast<int>(kd);
    s.f = Keep(CheckF32(o.Get("f"), static_cast<double>(rows) * s.k, name));
    s.g = Keep(CheckF32(o.Get("g"), static_cast<double>(rows) * s.k, name));
    const Napi::Value d = o.Get("dense");
    if (!d.IsNull() && !d.IsUndefined()) s.dense = Keep(CheckF32(d, static_cast<double>(rows) * rows, name));
    (void)other;
    return s;
  }
  Napi::Float32Array CheckF32(const Napi::Value& v, double expected, const char* name) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(Env(), std::string(name) + ": expected a Float32Array");
    auto arr = v.As<Napi::Float32Array>();
    if (static_cast<double>(arr.ElementLength()) != expected)
      throw Napi::RangeError::New(Env(), std::string(name) + ": wrong length");
    return arr;
  }
  cmerge::DopProjection Proj(const Napi::Value& v, int m, int n, const char* name) {
    if (!v.IsObject()) throw Napi::TypeError::New(Env(), std::string(name) + " must be an object");
    auto o = v.As<Napi::Object>();
    cmerge::DopProjection p;
    p.w = Keep(CheckF32(o.Get("w"), static_cast<double>(m) * n, name));
    p.left = Side(o.Get("left"), m, n, name);
    p.right = Side(o.Get("right"), n, m, name);
    return p;
  }
  float* w_ = nullptr;
  cmerge::DopProjection a_, b_;
  cmerge::DopLoopOptions o_;
  int m_ = 0, n_ = 0;

 protected:
  void Run() override { r_ = cmerge::DopAdamLoop(w_, a_, b_, m_, n_, o_); }
  void OnOK() override {
    auto out = Napi::Object::New(Env());
    out.Set("lossA", r_.lossA);
    out.Set("lossB", r_.lossB);
    out.Set("weightA", r_.weightA);
    out.Set("weightB", r_.weightB);
    out.Set("stopped", r_.stopped);
    deferred_.Resolve(out);
  }

 private:
  std::vector<Napi::ObjectReference> refs_;
  cmerge::DopLoopResult r_;
};

Napi::Value DopAdam(const Napi::CallbackInfo& info) {
  const int m = Dim(info, 3, "m"), n = Dim(info, 4, "n");
  auto w = F32(info, 0, "w", static_cast<double>(m) * n);
  if (!info[5].IsObject()) throw Napi::TypeError::New(info.Env(), "opts must be an object");
  auto opts = info[5].As<Napi::Object>();
  auto* wk = new DopWorker(info.Env(), info[6].ToBoolean());
  try {
    wk->w_ = wk->Keep(w);
    wk->a_ = wk->Proj(info[1], m, n, "pa");
    wk->b_ = wk->Proj(info[2], m, n, "pb");
    wk->m_ = m;
    wk->n_ = n;
    const double steps = opts.Get("numSteps").ToNumber().DoubleValue();
    if (!(steps >= 0 && steps <= 0x7fffffff && std::floor(steps) == steps))
      throw Napi::RangeError::New(info.Env(), "numSteps must be a non-negative integer");
    wk->o_.numSteps = static_cast<int>(steps);
    wk->o_.mgda = opts.Get("mgda").ToBoolean();
    wk->o_.ema = opts.Get("ema").ToBoolean();
    wk->o_.emaBeta = opts.Get("emaBeta").ToNumber().DoubleValue();
    wk->o_.alpha = opts.Get("alpha").ToNumber().DoubleValue();
    for (const char* key : {"stepSize", "bc2sqrt"}) {
      const Napi::Value v = opts.Get(key);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
          v.As<Napi::TypedArray>().ElementLength() < static_cast<size_t>(steps))
        throw Napi::TypeError::New(info.Env(), std::string(key) + " must be a Float64Array of numSteps values");
      const double* d = wk->Keep(v.As<Napi::Float64Array>());
      (std::string(key) == "stepSize" ? wk->o_.stepSize : wk->o_.bc2sqrt) = d;
    }
    const Napi::Value stop = opts.Get("stop");
    if (!stop.IsUndefined()) {
      if (!stop.IsTypedArray() || stop.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
          stop.As<Napi::TypedArray>().ElementLength() < 1)
        throw Napi::TypeError::New(info.Env(), "stop must be an Int32Array");
      wk->o_.stop = wk->Keep(stop.As<Napi::Int32Array>());
    }
  } catch (...) {
    delete wk;
    throw;
  }
  wk->Queue();
  return wk->Promise();
}

// U and V of one SVD kept in native memory (svdKeep), for opcmApply: they never become
// ArrayBuffers, so they are freed as soon as the cleaning is done instead of at garbage collection.
struct SvdHold {
  float* u = nullptr;
  float* v = nullptr;
  int m = 0, n = 0, r = 0;
  void Release() {
    if (u) Free(u, static_cast<size_t>(m) * r);
    if (v) Free(v, static_cast<size_t>(n) * r);
    u = v = nullptr;
  }
  ~SvdHold() { Release(); }
};

Napi::External<SvdHold> HoldArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "handle must come from svdKeep");
  return info[i].As<Napi::External<SvdHold>>();
}

class SvdKeepWorker : public PromiseWorker {
 public:
  SvdKeepWorker(Napi::Env env, Napi::Float32Array a, int m, int n, bool solo)
      : PromiseWorker(env, solo), aRef_(Napi::Persistent(a)), a_(a.Data()), hold_(new SvdHold) {
    hold_->m = m;
    hold_->n = n;
    hold_->r = std::min(m, n);
  }
  ~SvdKeepWorker() override {
    delete hold_;
    Free(s_, static_cast<size_t>(r()));
  }

 protected:
  int r() const { return hold_ ? hold_->r : 0; }
  void Run() override {
    const size_t m = hold_->m, n = hold_->n, r = hold_->r;
    hold_->u = Alloc<float>(m * r);
    hold_->v = Alloc<float>(n * r);
    s_ = Alloc<double>(r);
    const std::string err = cmerge::SvdGram(a_, hold_->m, hold_->n, hold_->u, s_, hold_->v);
    if (!err.empty()) SetError(err);
  }
  void OnOK() override {
    Napi::Env env = Env();
    const int r = hold_->r;
    auto out = Napi::Object::New(env);
    out.Set("s", Adopt(env, s_, r));
    SvdHold* h = hold_;
    hold_ = nullptr;
    out.Set("handle", Napi::External<SvdHold>::New(env, h, [](Napi::Env, SvdHold* p) { delete p; }));
    deferred_.Resolve(out);
  }

 private:
  Napi::Reference<Napi::Float32Array> aRef_;
  const float* a_;
  SvdHold* hold_;
  double* s_ = nullptr;
};

class OpcmApplyWorker : public PromiseWorker {
 public:
  OpcmApplyWorker(Napi::Env env, Napi::External<SvdHold> h, Napi::Float32Array tau, int k, int rank, bool solo)
      : PromiseWorker(env, solo), hRef_(Napi::Persistent(h)), tauRef_(Napi::Persistent(tau)), hold_(h.Data()),
        tau_(tau.Data()), k_(k), rank_(rank) {}

 protected:
  void Run() override {
    if (!hold_->u) {
      SetError("opcmApply: this SVD was already used or released");
      return;
    }
    sums_ = cmerge::OpcmApply(tau_, hold_->u, hold_->v, hold_->m, hold_->n, k_, rank_);
    hold_->Release();
  }
  void OnOK() override {
    auto out = Napi::Object::New(Env());
    out.Set("removedSq", sums_.removedSq);
    out.Set("cleanedSq", sums_.cleanedSq);
    deferred_.Resolve(out);
  }

 private:
  Napi::Reference<Napi::External<SvdHold>> hRef_;
  Napi::Reference<Napi::Float32Array> tauRef_;
  SvdHold* hold_;
  float* tau_;
  int k_, rank_;
  cmerge::OpcmSums sums_;
};

// svdKeep(a, m, n, solo): Promise<{s: Float64Array, handle}>: the SVD with U and V kept native.
Napi::Value SvdKeep(const Napi::CallbackInfo& info) {
  const int m = Dim(info, 1, "m"), n = Dim(info, 2, "n");
  auto a = F32(info, 0, "a", static_cast<double>(m) * n);
  auto* w = new SvdKeepWorker(info.Env(), a, m, n, info[3].ToBoolean());
  w->Queue();
  return w->Promise();
}

// opcmApply(handle, tau, k, rank, solo): Promise<{removedSq, cleanedSq}>; tau becomes the cleaned
// tensor, and the handle's U and V are freed.
Napi::Value OpcmApplyJs(const Napi::CallbackInfo& info) {
  auto h = HoldArg(info, 0);
  SvdHold* hold = h.Data();
  if (!hold->u) throw Napi::Error::New(info.Env(), "opcmApply: this SVD was already used or released");
  auto tau = F32(info, 1, "tau", static_cast<double>(hold->m) * hold->n);
  const double k = info[2].ToNumber().DoubleValue(), rank = info[3].ToNumber().DoubleValue();
  if (!(k >= 0 && k <= hold->r && std::floor(k) == k) || !(rank >= 1 && rank <= hold->r && std::floor(rank) == rank))
    throw Napi::RangeError::New(info.Env(), "opcmApply: k or rank out of range");
  auto* w = new OpcmApplyWorker(info.Env(), h, tau, static_cast<int>(k), static_cast<int>(rank), info[4].ToBoolean());
  w->Queue();
  return w->Promise();
}

// svdRelease(handle): frees U and V now (when the cleaning is not run).
Napi::Value SvdRelease(const Napi::CallbackInfo& info) {
  HoldArg(info, 0).Data()->Release();
  return info.Env().Undefined();
}

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

// blasCore(): the kernel set OpenBLAS chose at load (OPENBLAS_CORETYPE, else its CPU detection).
Napi::Value BlasCore(const Napi::CallbackInfo& info) {
  const char* core = openblas_get_corename();
  return Napi::String::New(info.Env(), core ? core : "unknown");
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
  exports.Set("dopAdam", Napi::Function::New(env, DopAdam, "dopAdam"));
  exports.Set("svdKeep", Napi::Function::New(env, SvdKeep, "svdKeep"));
  exports.Set("opcmApply", Napi::Function::New(env, OpcmApplyJs, "opcmApply"));
  exports.Set("svdRelease", Napi::Function::New(env, SvdRelease, "svdRelease"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("getThreads", Napi::Function::New(env, GetThreads, "getThreads"));
  exports.Set("setLanes", Napi::Function::New(env, SetLanes, "setLanes"));
  exports.Set("blasCore", Napi::Function::New(env, BlasCore, "blasCore"));
  exports.Set("nullTolerance", Napi::Number::New(env, cmerge::kNullTol));
  return exports;
}

}  // namespace

NODE_API_MODULE(cmerge_linalg, Init)

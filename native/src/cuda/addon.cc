// N-API surface of cmerge_cuda (docs/cuda-engine.md). Jobs run on the libuv pool and resolve
// Promises. A job first uploads its inputs on the copy stream (Stage, one job at a time), then
// computes on the compute stream (Run, one job at a time), then (OPCM's cleaning) downloads its
// result on the copy stream (Fetch): one job's copies overlap another's compute. Failures reject with an Error whose `code` is CUDA_STICKY (the device is lost: restart
// the process), CUDA_OOM or CUDA_ERROR.
#include <napi.h>

#include <memory>
#include <new>
#include <string>

#include "ops.h"

namespace {

using namespace cmerge::cuda;

const Api* LoadApi(Napi::Env env) {
  std::string why;
  const Api* api = Load(&why);
  if (!api) throw Napi::Error::New(env, why);
  return api;
}

int Int(const Napi::CallbackInfo& info, size_t i, const char* name, int min = 1) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= min && d <= 0x7fffffff && static_cast<double>(static_cast<long long>(d)) == d))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be an integer ≥ " + std::to_string(min));
  return static_cast<int>(d);
}

Napi::Float32Array F32(const Napi::CallbackInfo& info, size_t i, const char* name, double expected) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
  auto a = info[i].As<Napi::Float32Array>();
  if (static_cast<double>(a.ElementLength()) != expected)
    throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(a.ElementLength()) +
                                                " elements, expected " + std::to_string(static_cast<size_t>(expected)));
  return a;
}

Session* GetSession(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "session expected");
  Session* s = info[0].As<Napi::External<Session>>().Data();
  if (!s) throw Napi::Error::New(info.Env(), "the CUDA engine is closed");
  return s;
}

// A resident SVD (prev's factors for OPCM's cleaning), freed by freeResident or, failing that, GC.
struct Resident {
  Session* session;
  std::unique_ptr<DevSvd> svd;
};

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, Session* s) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), s_(s) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() final {
    Device& dev = s_->dev;
    bool ok = false;
    try {
      if (Stages()) {
        auto lock = dev.BeginStaging();
        Stage();
        staged_ = dev.StagingDone();
      }
      auto lock = dev.Begin();
      dev.SetMathMode(s_->tf32);
      JobTimer timer(*s_);
      if (staged_) dev.AwaitStaging(staged_);
      Run();
      timer.Stop();
      if (Fetches()) {
        computed_ = dev.ComputeDone();
        lock.unlock();  // the next job computes while this one's results download
        auto copy = dev.BeginStaging();
        Fetch();
      }
      ok = true;
    } catch (const CudaError& e) {
      code_ = std::string("CUDA_") + (e.kind[0] == 's' ? "STICKY" : e.kind[0] == 'o' ? "OOM" : "ERROR");
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "CUDA_ERROR";
      SetError("out of host memory");
    } catch (const std::exception& e) {
      code_ = "CUDA_ERROR";
      SetError(e.what());
    }
    // On this thread, where the context is current (not in the destructor, on the JS thread).
    if (!ok && Stages()) dev.SettleStaging();  // uploads may still read what Release frees
    Release(ok);
    if (staged_) dev.api.cudaEventDestroy(staged_);
    if (computed_) dev.api.cudaEventDestroy(computed_);
  }
  virtual bool Stages() const { return false; }
  // Allocates and uploads the inputs with StageF32 (under BeginStaging).
  virtual void Stage() {}
  virtual void Run() = 0;
  virtual bool Fetches() const { return false; }
  // Downloads the results with FetchF32 (under BeginStaging, after Run).
  virtual void Fetch() {}
  void FetchF32(float* host, const Buf<float>& b) {
    s_->dev.Fetch(host, b.get(), b.size() * sizeof(float), computed_);
  }
  // Frees what Stage allocated and Run left (ok: the job succeeded; OnOK comes next).
  virtual void Release(bool ok) { (void)ok; }
  Buf<float> StageF32(const float* host, size_t count) {
    Buf<float> b(*s_, count);
    s_->dev.Stage(b.get(), host, count * sizeof(float));
    return b;
  }
  void OnError(const Napi::Error& e) final {
    Napi::Object err = e.Value();
    err.Set("code", Napi::String::New(Env(), code_));
    deferred_.Reject(err);
  }
  Napi::Promise::Deferred deferred_;
  Session* s_;

 private:
  std::string code_ = "CUDA_ERROR";
  cudaEvent_t staged_ = nullptr, computed_ = nullptr;
};

// Keeps JS arrays alive (and in place) while a job reads or writes them.
class Pin {
 public:
  void Add(Napi::TypedArray a) { refs_.emplace_back(Napi::Persistent(a)); }

 private:
  std::vector<Napi::Reference<Napi::TypedArray>> refs_;
};

class SgemmJob : public Job {
 public:
  SgemmJob(Napi::Env env, Session* s, Napi::Float32Array a, Napi::Float32Array b, int m, int k, int n, bool ta, bool tb)
      : Job(env, s), a_(a.Data()), b_(b.Data()), m_(m), k_(k), n_(n), ta_(ta), tb_(tb),
        out_(Napi::Float32Array::New(env, static_cast<size_t>(m) * n)) {
    pin_.Add(a), pin_.Add(b);
    outRef_ = Napi::Persistent(out_);
    c_ = out_.Data();
  }
  bool Stages() const override { return true; }
  void Stage() override {
    da_ = StageF32(a_, static_cast<size_t>(m_) * k_);
    db_ = StageF32(b_, static_cast<size_t>(k_) * n_);
  }
  void Run() override { Sgemm(*s_, da_, db_, c_, m_, k_, n_, ta_, tb_); }
  void Release(bool) override { da_.reset(), db_.reset(); }
  void OnOK() override { deferred_.Resolve(outRef_.Value()); }

 private:
  const float *a_, *b_;
  Buf<float> da_, db_;
  int m_, k_, n_;
  bool ta_, tb_;
  Napi::Float32Array out_;
  Napi::Reference<Napi::Float32Array> outRef_;
  float* c_;
  Pin pin_;
};

class SvdJob : public Job {
 public:
  SvdJob(Napi::Env env, Session* s, Napi::Float32Array a, int m, int n) : Job(env, s), a_(a.Data()), m_(m), n_(n) {
    const int r = std::min(m, n);
    u_ = Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(m) * r));
    v_ = Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(n) * r));
    s__ = Napi::Persistent(Napi::Float64Array::New(env, r));
    up_ = u_.Value().Data(), vp_ = v_.Value().Data(), sp_ = s__.Value().Data();
    pin_.Add(a);
  }
  bool Stages() const override { return true; }
  void Stage() override { da_ = StageF32(a_, static_cast<size_t>(m_) * n_); }
  void Run() override { SvdToHost(*s_, da_, m_, n_, up_, sp_, vp_); }
  void Release(bool) override { da_.reset(); }
  void OnOK() override {
    auto o = Napi::Object::New(Env());
    o.Set("u", u_.Value()), o.Set("s", s__.Value()), o.Set("v", v_.Value());
    deferred_.Resolve(o);
  }

 private:
  const float* a_;
  Buf<float> da_;
  int m_, n_;
  Napi::Reference<Napi::Float32Array> u_, v_;
  Napi::Reference<Napi::Float64Array> s__;
  float *up_, *vp_;
  double* sp_;
  Pin pin_;
};

void FreeResident(Resident* r) {
  if (!r->svd) return;
  try {
    auto lock = r->session->dev.Begin();
    r->svd.reset();
  } catch (...) {
    r->svd.release();  // the device is lost: its memory went with the context
  }
}

class SvdResidentJob : public Job {
 public:
  SvdResidentJob(Napi::Env env, Session* s, Napi::Float32Array a, int m, int n) : Job(env, s), a_(a.Data()), m_(m), n_(n) {
    pin_.Add(a);
  }
  bool Stages() const override { return true; }
  void Stage() override { da_ = StageF32(a_, static_cast<size_t>(m_) * n_); }
  void Run() override { svd_ = std::make_unique<DevSvd>(GramSvd(*s_, da_, m_, n_)); }
  // A failed job's factors go too; a successful job's become the Resident in OnOK.
  void Release(bool ok) override {
    da_.reset();
    if (!ok) svd_.reset();
  }
  void OnOK() override {
    Napi::Env env = Env();
    auto sv = Napi::Float64Array::New(env, svd_->s.size());
    std::copy(svd_->s.begin(), svd_->s.end(), sv.Data());
    auto* r = new Resident{s_, std::move(svd_)};
    auto handle = Napi::External<Resident>::New(env, r, [](Napi::Env, Resident* p) {
      FreeResident(p);
      delete p;
    });
    auto o = Napi::Object::New(env);
    o.Set("handle", handle), o.Set("s", sv);
    deferred_.Resolve(o);
  }

 private:
  const float* a_;
  int m_, n_;
  Buf<float> da_;
  std::unique_ptr<DevSvd> svd_;
  Pin pin_;
};

class OpcmApplyJob : public Job {
 public:
  OpcmApplyJob(Napi::Env env, Resident* r, Napi::Object handle, Napi::Float32Array tau, int k, int rank)
      : Job(env, r->session), r_(r), tau_(tau.Data()), count_(tau.ElementLength()), k_(k), rank_(rank) {
    pin_.Add(tau);
    handleRef_ = Napi::Persistent(handle);
  }
  bool Stages() const override { return true; }
  void Stage() override { t_ = StageF32(tau_, count_); }
  void Run() override {
    if (!r_->svd) throw CudaError("resident SVD already freed", "error");
    sums_ = OpcmApply(*s_, *r_->svd, t_, k_, rank_);
  }
  bool Fetches() const override { return true; }
  void Fetch() override { FetchF32(tau_, t_); }
  void Release(bool) override { t_.reset(); }
  void OnOK() override {
    auto o = Napi::Object::New(Env());
    o.Set("removedSq", sums_.first), o.Set("cleanedSq", sums_.second);
    deferred_.Resolve(o);
  }

 private:
  Resident* r_;
  float* tau_;
  size_t count_;
  Buf<float> t_;
  int k_;
  int rank_;
  std::pair<double, double> sums_;
  Napi::ObjectReference handleRef_;
  Pin pin_;
};

class FreeResidentJob : public Job {
 public:
  FreeResidentJob(Napi::Env env, Resident* r, Napi::Object handle) : Job(env, r->session), r_(r) {
    handleRef_ = Napi::Persistent(handle);
  }
  void Run() override { r_->svd.reset(); }  // under Begin(): the context is current
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

 private:
  Resident* r_;
  Napi::ObjectReference handleRef_;
};

class DopJob : public Job {
 public:
  DopJob(Napi::Env env, Session* s, Napi::Float32Array base, Napi::Float32Array wa, Napi::Float32Array wb, int m, int n,
         DopOpts o, Napi::Value stop)
      : Job(env, s), base_(base.Data()), wa_(wa.Data()), wb_(wb.Data()), m_(m), n_(n), o_(o) {
    pin_.Add(base), pin_.Add(wa), pin_.Add(wb);
    if (stop.IsTypedArray()) {
      pin_.Add(stop.As<Napi::TypedArray>());
      o_.stop = stop.As<Napi::Int32Array>().Data();
    }
    out_ = Napi::Persistent(Napi::Float32Array::New(env, static_cast<size_t>(m) * n));
    outp_ = out_.Value().Data();
  }
  bool Stages() const override { return true; }
  void Stage() override {
    const size_t mn = static_cast<size_t>(m_) * n_;
    dwa_ = StageF32(wa_, mn), dwb_ = StageF32(wb_, mn), dbase_ = StageF32(base_, mn);
  }
  void Run() override { res_ = DopOptimize(*s_, dbase_, dwa_, dwb_, outp_, m_, n_, o_); }
  void Release(bool) override { dwa_.reset(), dwb_.reset(), dbase_.reset(); }
  void OnOK() override {
    auto o = Napi::Object::New(Env());
    o.Set("w", out_.Value());
    o.Set("lossA", res_.lossA), o.Set("lossB", res_.lossB);
    o.Set("weightA", res_.weightA), o.Set("weightB", res_.weightB);
    o.Set("rankA", res_.rankA), o.Set("rankB", res_.rankB);
    o.Set("stopped", res_.stopped);
    deferred_.Resolve(o);
  }

 private:
  const float *base_, *wa_, *wb_;
  Buf<float> dbase_, dwa_, dwb_;
  int m_, n_;
  DopOpts o_;
  Napi::Reference<Napi::Float32Array> out_;
  float* outp_;
  DopOut res_;
  Pin pin_;
};

std::string Version(int v, bool cudaStyle) {
  // CUDA: 1000·major + 10·minor; cuBLAS: 10000·major + 100·minor + patch; cuSOLVER: 1000·major + 100·minor + patch
  if (cudaStyle) return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
  return std::to_string(v);
}

// probe(device): { ok: true, name, ordinal, cc, totalBytes, driver, runtime, cublas, cusolver, libs } | { ok: false, reason }
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  std::string why;
  const Api* api = Load(&why);
  if (!api) {
    o.Set("ok", false), o.Set("reason", why);
    return o;
  }
  try {
    Device& d = Device::Get(*api, Int(info, 0, "device", 0));
    const DeviceInfo& i = d.info();
    o.Set("ok", true);
    o.Set("name", i.name), o.Set("ordinal", i.ordinal);
    o.Set("cc", std::to_string(i.ccMajor) + "." + std::to_string(i.ccMinor));
    o.Set("totalBytes", static_cast<double>(i.totalBytes));
    o.Set("driver", Version(i.driverVersion, true)), o.Set("runtime", Version(i.runtimeVersion, true));
    o.Set("cublas", i.cublasVersion), o.Set("cusolver", i.cusolverVersion);
    auto libs = Napi::Object::New(env);
    libs.Set("cudart", api->cudartPath), libs.Set("cublas", api->cublasPath);
    libs.Set("cusolver", api->cusolverPath), libs.Set("driver", api->driverPath);
    o.Set("libs", libs);
  } catch (const CudaError& e) {
    o.Set("ok", false), o.Set("reason", e.what());
  }
  return o;
}

// open(device, maxBytes, tf32): a session (device memory and time of one engine)
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Api* api = LoadApi(env);
  const int device = Int(info, 0, "device", 0);
  const double maxBytes = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  try {
    Device& d = Device::Get(*api, device);
    return Napi::External<Session>::New(env, new Session(d, static_cast<size_t>(maxBytes), info[2].ToBoolean()));
  } catch (const CudaError& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "session expected");
  delete info[0].As<Napi::External<Session>>().Data();
  return info.Env().Undefined();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  auto o = Napi::Object::New(info.Env());
  const Session::Stats st = s->Read();
  o.Set("gpuSeconds", st.gpuMs / 1000.0);
  o.Set("peakDeviceBytes", static_cast<double>(st.peak));
  o.Set("inUseBytes", static_cast<double>(st.inUse));
  return o;
}

Napi::Value ResetStats(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  s->ResetStats();
  return info.Env().Undefined();
}

// memInfo(session): { free, total } bytes of the device (cudaMemGetInfo). Not under the job lock:
// the engine asks while another tensor's job runs, and must not wait for it.
Napi::Value MemInfo(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  size_t freeB = 0, total = 0;
  s->dev.MakeCurrent();
  s->dev.Check(s->dev.api.cudaMemGetInfo(&freeB, &total), "cudaMemGetInfo");
  auto o = Napi::Object::New(info.Env());
  o.Set("free", static_cast<double>(freeB)), o.Set("total", static_cast<double>(total));
  return o;
}

template <typename F>
Napi::Value Guard(const Napi::CallbackInfo& info, F f) {
  try {
    return f();
  } catch (const CudaError& e) {
    auto err = Napi::Error::New(info.Env(), e.what());
    err.Set("code", Napi::String::New(info.Env(), e.kind[0] == 's' ? "CUDA_STICKY" : "CUDA_ERROR"));
    throw err;
  }
}

Napi::Value SgemmFn(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  const int m = Int(info, 3, "m"), k = Int(info, 4, "k"), n = Int(info, 5, "n");
  auto a = F32(info, 1, "a", static_cast<double>(m) * k), b = F32(info, 2, "b", static_cast<double>(k) * n);
  auto* j = new SgemmJob(info.Env(), s, a, b, m, k, n, info[6].ToBoolean(), info[7].ToBoolean());
  j->Queue();
  return j->Promise();
}

Napi::Value SvdFn(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  const int m = Int(info, 2, "m"), n = Int(info, 3, "n");
  auto* j = new SvdJob(info.Env(), s, F32(info, 1, "a", static_cast<double>(m) * n), m, n);
  j->Queue();
  return j->Promise();
}

Napi::Value SvdResidentFn(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  const int m = Int(info, 2, "m"), n = Int(info, 3, "n");
  auto* j = new SvdResidentJob(info.Env(), s, F32(info, 1, "a", static_cast<double>(m) * n), m, n);
  j->Queue();
  return j->Promise();
}

Resident* GetResident(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throw Napi::TypeError::New(info.Env(), "resident handle expected");
  return info[i].As<Napi::External<Resident>>().Data();
}

// opcmApply(handle, tau, k, rank): tau overwritten with the cleaned tensor; { removedSq, cleanedSq }
Napi::Value OpcmApplyFn(const Napi::CallbackInfo& info) {
  Resident* r = GetResident(info, 0);
  if (!r->svd) throw Napi::Error::New(info.Env(), "resident SVD already freed");
  auto tau = F32(info, 1, "tau", static_cast<double>(r->svd->m) * r->svd->n);
  const int k = Int(info, 2, "k", 0);
  const int rank = Int(info, 3, "rank", 1);
  if (rank > r->svd->r) throw Napi::RangeError::New(info.Env(), "rank exceeds min(m, n)");
  if (k >= rank) throw Napi::RangeError::New(info.Env(), "k must be below the rank");
  auto* j = new OpcmApplyJob(info.Env(), r, info[0].As<Napi::Object>(), tau, k, rank);
  j->Queue();
  return j->Promise();
}

Napi::Value FreeResidentFn(const Napi::CallbackInfo& info) {
  Resident* r = GetResident(info, 0);
  auto* j = new FreeResidentJob(info.Env(), r, info[0].As<Napi::Object>());
  j->Queue();
  return j->Promise();
}

// dopOptimize(session, base, wa, wb, m, n, opts) → { w, lossA, lossB, weightA, weightB, rankA, rankB, stopped }
// opts.stop (optional Int32Array) is read before each step: nonzero ends the loop there (stopped).
Napi::Value DopFn(const Napi::CallbackInfo& info) {
  Session* s = GetSession(info);
  const int m = Int(info, 4, "m"), n = Int(info, 5, "n");
  const double mn = static_cast<double>(m) * n;
  auto base = F32(info, 1, "base", mn), wa = F32(info, 2, "wa", mn), wb = F32(info, 3, "wb", mn);
  if (!info[6].IsObject()) throw Napi::TypeError::New(info.Env(), "opts must be an object");
  auto p = info[6].As<Napi::Object>();
  DopOpts o;
  o.lr = p.Get("lr").ToNumber().DoubleValue();
  o.numSteps = p.Get("num_steps").ToNumber().Int32Value();
  o.mgda = p.Get("mgda").ToBoolean();
  o.ema = p.Get("ema").ToBoolean();
  o.emaBeta = p.Get("ema_beta").ToNumber().DoubleValue();
  o.alpha = p.Get("alpha").ToNumber().DoubleValue();
  o.svdEpsilon = p.Get("svd_epsilon").ToNumber().DoubleValue();
  const std::string space = p.Get("svd_proj_space").ToString().Utf8Value();
  o.space = space == "u" ? 'u' : space == "v" ? 'v' : 'b';
  const Napi::Value stop = p.Get("stop");
  if (!stop.IsUndefined() && (!stop.IsTypedArray() || stop.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
                              stop.As<Napi::TypedArray>().ElementLength() < 1))
    throw Napi::TypeError::New(info.Env(), "opts.stop must be an Int32Array");
  auto* j = new DopJob(info.Env(), s, base, wa, wb, m, n, o, stop);
  j->Queue();
  return j->Promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
  exports.Set("resetStats", Napi::Function::New(env, ResetStats, "resetStats"));
  exports.Set("memInfo", Napi::Function::New(env, [](const Napi::CallbackInfo& i) { return Guard(i, [&] { return MemInfo(i); }); }, "memInfo"));
  exports.Set("sgemm", Napi::Function::New(env, SgemmFn, "sgemm"));
  exports.Set("svd", Napi::Function::New(env, SvdFn, "svd"));
  exports.Set("svdResident", Napi::Function::New(env, SvdResidentFn, "svdResident"));
  exports.Set("opcmApply", Napi::Function::New(env, OpcmApplyFn, "opcmApply"));
  exports.Set("freeResident", Napi::Function::New(env, FreeResidentFn, "freeResident"));
  exports.Set("dopOptimize", Napi::Function::New(env, DopFn, "dopOptimize"));
  return exports;
}

}  // namespace

NODE_API_MODULE(cmerge_cuda, Init)

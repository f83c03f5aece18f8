// DOP's optimisation of one tensor on the device: the arithmetic of src/engine/ops/dop-optimize.ts
// (docs/methods.md#dop) with the tensors resident; per Adam step the host only reads seven dot products
// (two losses, three gradient products) to form the MGDA weights.
#include <cmath>

#include "ops.h"

namespace cmerge::cuda {
namespace {

// One side of the quadratic form: F (rows×k, leading singular vectors), G = F·diag(σ²), and the
// dense rows×rows G·Fᵀ when that is cheaper than the factors (rows ≤ 2k, as the CPU engines do).
struct Side {
  bool present = false;
  int rows = 0, k = 0;
  Buf<float> f, g, dense;
};

struct Projection {
  const float* w = nullptr;  // the model this loss pulls towards (device)
  Side left, right;
  int rank = 0;
};

void Diff(Session& s, const float* a, const float* b, float* out, long long n) {
  void* args[] = {&a, &b, &out, &n};
  s.dev.Launch(kDiffF32, Blocks(n), args);
}

// *out = Σ a·b (float64) through `partials` (Blocks(n) doubles; the stream orders its reuse).
void Dot(Session& s, const float* a, const float* b, long long n, double* partials, double* out) {
  const unsigned blocks = Blocks(n);
  void* args[] = {&a, &b, &n, &partials};
  s.dev.Launch(kDotF32, blocks, args);
  SumPartials(s, partials, static_cast<int>(blocks), out);
}

Side MakeSide(Session& s, const Buf<float>& vecs, int rows, int k, const Buf<double>& sv) {
  Side side;
  if (k == 0) return side;
  side.present = true;
  side.rows = rows;
  side.k = k;
  const size_t rk = static_cast<size_t>(rows) * k;
  side.f = Buf<float>(s, rk);
  s.dev.Check(s.dev.api.cudaMemcpyAsync(side.f.get(), vecs.get(), rk * sizeof(float), cudaMemcpyDeviceToDevice, s.dev.stream()),
              "cudaMemcpyAsync (F)");
  side.g = Buf<float>(s, rk);
  {
    const float* src = side.f.get();
    const double* dp = sv.get();
    float* dst = side.g.get();
    int ld = rows, squared = 1;
    void* args[] = {&src, &ld, &rows, &dp, &squared, &dst, &ld};
    s.dev.Launch(kScaleColsF32, static_cast<unsigned>(k), args);
  }
  if (rows <= 2 * k) {
    side.dense = Buf<float>(s, static_cast<size_t>(rows) * rows);
    Gemm(s, false, true, rows, rows, k, side.g.get(), rows, side.f.get(), rows, side.dense.get(), rows);
    side.f.reset(), side.g.reset();  // GradLoss reads the dense form only
  }
  return side;
}

Projection Project(Session& s, const float* w, const float* base, int m, int n, const DopOpts& o) {
  const long long mn = static_cast<long long>(m) * n;
  Buf<float> d(s, static_cast<size_t>(mn));
  Diff(s, w, base, d.get(), mn);
  DevSvd svd = GramSvd(s, d, m, n);
  Projection p;
  p.w = w;
  double total = 0;
  for (double x : svd.s) total += x;
  int k = 0;
  if (total > 0) {
    // torch.searchsorted(cumsum/total, ε): the index of the first ratio ≥ min(ε, 1), else r
    const double eps = std::min(o.svdEpsilon, 1.0);
    k = svd.r;
    double c = 0;
    for (int i = 0; i < svd.r; ++i) {
      c += svd.s[i];
      if (c / total >= eps) {
        k = i;
        break;
      }
    }
  }
  p.rank = k;
  Buf<double> sv(s, static_cast<size_t>(std::max(svd.r, 1)));
  s.dev.Upload(sv.get(), svd.s.data(), svd.s.size() * sizeof(double));
  if (o.space != 'v') p.left = MakeSide(s, svd.u, m, k, sv);
  if (o.space != 'u') p.right = MakeSide(s, svd.v, n, k, sv);
  s.dev.Sync();
  return p;
}

// g = 2(AΔ + ΔB) and the two loss terms ⟨Δ, AΔ⟩, ⟨Δ, ΔB⟩ into acc[0], acc[1]. Row-major
// Δ (m×n) is the column-major Δᵀ (n×m): AΔ becomes Δᵀ·Aᵀ, ΔB becomes Bᵀ·Δᵀ.
void GradLoss(Session& s, const Projection& p, const float* w, int m, int n, float* delta, float* prod, float* tmp,
              float* g, double* partials, double* acc) {
  const long long mn = static_cast<long long>(m) * n;
  Diff(s, w, p.w, delta, mn);
  if (p.left.present) {
    const Side& a = p.left;
    if (a.dense.get()) {
      Gemm(s, false, true, n, m, m, delta, n, a.dense.get(), m, prod, n);
    } else {
      Gemm(s, false, false, n, a.k, m, delta, n, a.f.get(), m, tmp, n);      // Δᵀ F (n×k)
      Gemm(s, false, true, n, m, a.k, tmp, n, a.g.get(), m, prod, n);        // (Δᵀ F) Gᵀ
    }
    Dot(s, delta, prod, mn, partials, acc);
    int accumulate = 0;
    void* args[] = {&g, &prod, &accumulate, const_cast<long long*>(&mn)};
    s.dev.Launch(kGradAccF32, Blocks(mn), args);
  }
  if (p.right.present) {
    const Side& b = p.right;
    if (b.dense.get()) {
      Gemm(s, true, false, n, m, n, b.dense.get(), n, delta, n, prod, n);
    } else {
      Gemm(s, true, false, b.k, m, n, b.f.get(), n, delta, n, tmp, b.k);     // Fᵀ Δᵀ (k×m)
      Gemm(s, false, false, n, m, b.k, b.g.get(), n, tmp, b.k, prod, n);     // G (Fᵀ Δᵀ)
    }
    Dot(s, delta, prod, mn, partials, acc + 1);
    int accumulate = p.left.present ? 1 : 0;
    void* args[] = {&g, &prod, &accumulate, const_cast<long long*>(&mn)};
    s.dev.Launch(kGradAccF32, Blocks(mn), args);
  }
  if (!p.left.present && !p.right.present)
    s.dev.Check(s.dev.api.cudaMemsetAsync(g, 0, static_cast<size_t>(mn) * sizeof(float), s.dev.stream()), "cudaMemsetAsync");
}

double MinNormGamma(double v11, double v12, double v22) {
  if (v12 >= v11) return 0.999;
  if (v12 >= v22) return 0.001;
  return -1.0 * ((v12 - v22) / (v11 + v22 - 2 * v12));
}

}  // namespace

DopOut DopOptimize(Session& s, Buf<float>& dbase, Buf<float>& dwa, Buf<float>& dwb, float* out, int m, int n,
                   const DopOpts& o) {
  Device& dev = s.dev;
  const size_t mnz = static_cast<size_t>(m) * n;
  const long long mn = static_cast<long long>(mnz);
  Projection pa, pb;
  pa = Project(s, dwa.get(), dbase.get(), m, n, o);
  pb = Project(s, dwb.get(), dbase.get(), m, n, o);
  dbase.reset();
  Buf<float> w(s, mnz), mAvg(s, mnz), vAvg(s, mnz), delta(s, mnz), prod(s, mnz), ga(s, mnz), gb(s, mnz);
  const int kmax = std::max(pa.rank, pb.rank);
  Buf<float> tmp(s, static_cast<size_t>(std::max(kmax, 1)) * std::max(m, n));
  {
    const float* a = dwa.get();
    const float* b = dwb.get();
    float* wp = w.get();
    long long cnt = mn;
    void* args[] = {&a, &b, &wp, &cnt};
    dev.Launch(kMean2F32, Blocks(mn), args);
  }
  dev.Check(dev.api.cudaMemsetAsync(mAvg.get(), 0, mnz * sizeof(float), dev.stream()), "cudaMemsetAsync");
  dev.Check(dev.api.cudaMemsetAsync(vAvg.get(), 0, mnz * sizeof(float), dev.stream()), "cudaMemsetAsync");
  // acc: the seven sums of a step, each written (not added to) by its Dot; the host reads only those
  // the step wrote (a present side's loss term, MGDA's products), so no clearing per step.
  Buf<double> acc(s, 8), partials(s, Blocks(mn));
  const double beta1 = 0.9, beta2 = 0.999, adamEps = 1e-8;
  double ema[2] = {o.alpha, 1 - o.alpha};
  DopOut res;
  for (int step = 1; step <= o.numSteps; ++step) {
    if (o.stop && __atomic_load_n(o.stop, __ATOMIC_RELAXED) != 0) {
      res.stopped = true;
      return res;
    }
    GradLoss(s, pa, w.get(), m, n, delta.get(), prod.get(), tmp.get(), ga.get(), partials.get(), acc.get());
    GradLoss(s, pb, w.get(), m, n, delta.get(), prod.get(), tmp.get(), gb.get(), partials.get(), acc.get() + 2);
    if (o.mgda) {
      Dot(s, ga.get(), ga.get(), mn, partials.get(), acc.get() + 4);
      Dot(s, ga.get(), gb.get(), mn, partials.get(), acc.get() + 5);
      Dot(s, gb.get(), gb.get(), mn, partials.get(), acc.get() + 6);
    }
    double h[8];
    dev.Download(h, acc.get(), sizeof h);
    // as the TypeScript: loss = 0, + left term, + right term
    res.lossA = (pa.left.present ? 0.0 + h[0] : 0.0) + (pa.right.present ? h[1] : 0.0);
    res.lossB = (pb.left.present ? 0.0 + h[2] : 0.0) + (pb.right.present ? h[3] : 0.0);
    double sol[2];
    if (o.mgda) {
      const double ia = res.lossA > 0 ? 1 / res.lossA : 0;
      const double ib = res.lossB > 0 ? 1 / res.lossB : 0;
      const double gamma = MinNormGamma(h[4] * ia * ia, h[5] * ia * ib, h[6] * ib * ib);
      sol[0] = gamma, sol[1] = 1 - gamma;
      if (o.ema) {
        ema[0] = o.emaBeta * ema[0] + (1 - o.emaBeta) * sol[0];
        ema[1] = o.emaBeta * ema[1] + (1 - o.emaBeta) * sol[1];
        sol[0] = ema[0], sol[1] = ema[1];
      }
    } else {
      sol[0] = o.alpha, sol[1] = 1 - o.alpha;
    }
    double bc1 = 1 - std::pow(beta1, step);
    double bc2sqrt = std::sqrt(1 - std::pow(beta2, step));
    double stepSize = o.lr / bc1;
    {
      float* wp = w.get();
      float* mp = mAvg.get();
      float* vp = vAvg.get();
      const float* gap = ga.get();
      const float* gbp = gb.get();
      double wa0 = sol[0], wb0 = sol[1], b1 = beta1, b2 = beta2, e = adamEps;
      long long cnt = mn;
      void* args[] = {&wp, &mp, &vp, &gap, &gbp, &wa0, &wb0, &b1, &b2, &stepSize, &bc2sqrt, &e, &cnt};
      dev.Launch(kAdamF32, Blocks(mn), args);
    }
    if (step == o.numSteps && o.mgda) ema[0] = sol[0], ema[1] = sol[1];
  }
  res.weightA = o.mgda ? ema[0] : o.alpha;
  res.weightB = o.mgda ? ema[1] : 1 - o.alpha;
  res.rankA = pa.rank;
  res.rankB = pb.rank;
  dev.Download(out, w.get(), mnz * sizeof(float));
  return res;
}

}  // namespace cmerge::cuda

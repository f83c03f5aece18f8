// See dop.h. Every operation is the one the JavaScript loop performs, in the same order and
// precision (float32 products through the same sgemm calls; float64 sums and Adam arithmetic,
// rounded to float32 where the JavaScript stores into a Float32Array), so both give the same bits.
#include "dop.h"

#include "big_alloc.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace cmerge {
namespace {

using std::size_t;

double Dot(const float* a, const float* b, size_t len) {
  double s = 0;
  for (size_t i = 0; i < len; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

// Row-major C (M×N) = op(A) op(B), as the addon's sgemm (leading dimensions of the stored shapes).
void Gemm(bool ta, bool tb, int M, int K, int N, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, a,
              ta ? M : K, b, tb ? K : N, 0.0f, c, N);
}

struct Work {
  BigVector<float> delta, prod, tmp;
};

// g = 2(AΔ + ΔB), Δ = w − p.w; returns ⟨Δ, AΔ⟩ + ⟨Δ, ΔB⟩. Each dot product and each stored g is
// the JavaScript's (same sums in the same order); the passes after a product are fused into one.
// With `other` (side a's gradient, when this is side b), the right side's pass also sums ⟨g_a, g_a⟩,
// ⟨g_a, g_b⟩ and ⟨g_b, g_b⟩ over the final g, in the order dot() would (mgda[0..2]).
double GradLoss(const DopProjection& p, const float* w, int m, int n, float* g, Work& wk, const float* other,
                double* mgda) {
  const size_t len = static_cast<size_t>(m) * n;
  float* delta = wk.delta.data();
  float* prod = wk.prod.data();
  for (size_t i = 0; i < len; ++i) delta[i] = static_cast<float>(static_cast<double>(w[i]) - p.w[i]);
  double loss = 0;
  if (p.left.present) {
    const DopSide& s = p.left;
    if (s.dense) {
      Gemm(false, false, m, m, n, s.dense, delta, prod);
    } else {
      Gemm(true, false, s.k, m, n, s.f, delta, wk.tmp.data());
      Gemm(false, false, m, s.k, n, s.g, wk.tmp.data(), prod);
    }
    double dl = 0;
    for (size_t i = 0; i < len; ++i) {
      dl += static_cast<double>(delta[i]) * static_cast<double>(prod[i]);
      g[i] = static_cast<float>(2.0 * prod[i]);
    }
    loss += dl;
  } else {
    std::fill(g, g + len, 0.0f);
  }
  if (p.right.present) {
    const DopSide& s = p.right;
    if (s.dense) {
      Gemm(false, false, m, n, n, delta, s.dense, prod);
    } else {
      Gemm(false, false, m, n, s.k, delta, s.f, wk.tmp.data());
      Gemm(false, true, m, s.k, n, wk.tmp.data(), s.g, prod);
    }
    double dr = 0;
    if (other) {
      double aa = 0, ab = 0, bb = 0;
      for (size_t i = 0; i < len; ++i) {
        dr += static_cast<double>(delta[i]) * static_cast<double>(prod[i]);
        const float gi = static_cast<float>(static_cast<double>(g[i]) + 2.0 * prod[i]);
        g[i] = gi;
        const double oa = other[i];
        aa += oa * oa;
        ab += oa * static_cast<double>(gi);
        bb += static_cast<double>(gi) * static_cast<double>(gi);
      }
      mgda[0] = aa, mgda[1] = ab, mgda[2] = bb;
    } else {
      for (size_t i = 0; i < len; ++i) {
        dr += static_cast<double>(delta[i]) * static_cast<double>(prod[i]);
        g[i] = static_cast<float>(static_cast<double>(g[i]) + 2.0 * prod[i]);
      }
    }
    loss += dr;
  } else if (other) {
    mgda[0] = Dot(other, other, len), mgda[1] = Dot(other, g, len), mgda[2] = Dot(g, g, len);
  }
  return loss;
}

double MinNormGamma(double v11, double v12, double v22) {
  if (v12 >= v11) return 0.999;
  if (v12 >= v22) return 0.001;
  return -1.0 * ((v12 - v22) / (v11 + v22 - 2 * v12));
}

size_t TmpSize(const DopProjection& p, int m, int n) {
  size_t t = 0;
  if (p.left.present && !p.left.dense) t = std::max(t, static_cast<size_t>(p.left.k) * n);
  if (p.right.present && !p.right.dense) t = std::max(t, static_cast<size_t>(m) * p.right.k);
  return t;
}

}  // namespace

DopLoopResult DopAdamLoop(float* w, const DopProjection& a, const DopProjection& b, int m, int n,
                          const DopLoopOptions& o) {
  const size_t len = static_cast<size_t>(m) * n;
  Work wk;
  wk.delta.resize(len);
  wk.prod.resize(len);
  wk.tmp.resize(std::max<size_t>(1, std::max(TmpSize(a, m, n), TmpSize(b, m, n))));
  BigVector<float> ga(len), gb(len), mAvg(len, 0.0f), vAvg(len, 0.0f);
  constexpr double beta1 = 0.9, beta2 = 0.999, adamEps = 1e-8;
  double ema0 = o.alpha, ema1 = 1 - o.alpha;
  DopLoopResult r;
  for (int step = 1; step <= o.numSteps; ++step) {
    if (o.stop && __atomic_load_n(o.stop, __ATOMIC_RELAXED) != 0) {
      r.stopped = true;
      return r;
    }
    double dots[3] = {0, 0, 0};  // ⟨g_a, g_a⟩, ⟨g_a, g_b⟩, ⟨g_b, g_b⟩ (only used with mgda)
    r.lossA = GradLoss(a, w, m, n, ga.data(), wk, nullptr, nullptr);
    r.lossB = GradLoss(b, w, m, n, gb.data(), wk, o.mgda ? ga.data() : nullptr, dots);
    double sol0, sol1;
    if (o.mgda) {
      const double ia = r.lossA > 0 ? 1 / r.lossA : 0;
      const double ib = r.lossB > 0 ? 1 / r.lossB : 0;
      const double gamma = MinNormGamma(dots[0] * ia * ia, dots[1] * ia * ib, dots[2] * ib * ib);
      sol0 = gamma;
      sol1 = 1 - gamma;
      if (o.ema) {
        ema0 = o.emaBeta * ema0 + (1 - o.emaBeta) * sol0;
        ema1 = o.emaBeta * ema1 + (1 - o.emaBeta) * sol1;
        sol0 = ema0;
        sol1 = ema1;
      }
    } else {
      sol0 = o.alpha;
      sol1 = 1 - o.alpha;
    }
    const double stepSize = o.stepSize[step - 1], bc2sqrt = o.bc2sqrt[step - 1];
    const float* pa = ga.data();
    const float* pb = gb.data();
    float* pm = mAvg.data();
    float* pv = vAvg.data();
    for (size_t i = 0; i < len; ++i) {
      const double g = sol0 * pa[i] + sol1 * pb[i];
      const double mi = beta1 * pm[i] + (1 - beta1) * g;
      const double vi = beta2 * pv[i] + (1 - beta2) * g * g;
      pm[i] = static_cast<float>(mi);
      pv[i] = static_cast<float>(vi);
      w[i] = static_cast<float>(w[i] - (stepSize * mi) / (std::sqrt(vi) / bc2sqrt + adamEps));
    }
    if (step == o.numSteps && o.mgda) ema0 = sol0, ema1 = sol1;
  }
  r.weightA = ema0;
  r.weightB = ema1;
  return r;
}

}  // namespace cmerge

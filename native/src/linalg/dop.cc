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

// The loops below are built for the widest vectors the CPU has; the loader picks the clone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CMERGE_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CMERGE_VECTOR_CLONES
#endif

// Every float64 sum here is eight interleaved partial sums, element i into lane i mod 8, added
// pairwise at the end: util/vec.ts's dot() order, which the JavaScript loop uses. Each lane is its
// own chain, so the sums run as one vector of doubles instead of one latency-bound scalar chain.
constexpr int kLanes = 8;
struct Sum8 {
  double s[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  double Total() const { return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); }
};

CMERGE_VECTOR_CLONES
double Dot(const float* __restrict a, const float* __restrict b, size_t len) {
  Sum8 acc;
  size_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc.s[j] += static_cast<double>(a[i + j]) * static_cast<double>(b[i + j]);
  for (int j = 0; i < len; ++i, ++j) acc.s[j] += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return acc.Total();
}

// Left side's pass: g = 2·AΔ; returns ⟨Δ, AΔ⟩.
CMERGE_VECTOR_CLONES
double LeftPass(const float* __restrict delta, const float* __restrict prod, float* __restrict g, size_t len) {
  Sum8 dl;
  size_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      dl.s[j] += static_cast<double>(delta[i + j]) * static_cast<double>(prod[i + j]);
      g[i + j] = static_cast<float>(2.0 * prod[i + j]);
    }
  for (int j = 0; i < len; ++i, ++j) {
    dl.s[j] += static_cast<double>(delta[i]) * static_cast<double>(prod[i]);
    g[i] = static_cast<float>(2.0 * prod[i]);
  }
  return dl.Total();
}

// One element of the right side's pass into lane j: g += 2·ΔB, ⟨Δ, ΔB⟩, and with kMgda the three
// MGDA sums over the final g. Shared by the vector body and the tail so both stay one arithmetic.
struct RightSums {
  Sum8 dr, aa, ab, bb;
};
template <bool kMgda>
inline __attribute__((always_inline)) void RightElement(const float* delta, const float* prod, float* g,
                                                        const float* other, size_t i, int j, RightSums& r) {
  r.dr.s[j] += static_cast<double>(delta[i]) * static_cast<double>(prod[i]);
  const float gi = static_cast<float>(static_cast<double>(g[i]) + 2.0 * prod[i]);
  g[i] = gi;
  if constexpr (kMgda) {
    const double oa = other[i];
    r.aa.s[j] += oa * oa;
    r.ab.s[j] += oa * static_cast<double>(gi);
    r.bb.s[j] += static_cast<double>(gi) * static_cast<double>(gi);
  }
}

template <bool kMgda>
inline __attribute__((always_inline)) void RightLoop(const float* __restrict delta, const float* __restrict prod,
                                                     float* __restrict g, const float* __restrict other, size_t len,
                                                     RightSums& r) {
  size_t i = 0;
  for (; i + kLanes <= len; i += kLanes)
    for (int j = 0; j < kLanes; ++j) RightElement<kMgda>(delta, prod, g, other, i + j, j, r);
  for (int j = 0; i < len; ++i, ++j) RightElement<kMgda>(delta, prod, g, other, i, j, r);
}

// Right side's pass: g += 2·ΔB; returns ⟨Δ, ΔB⟩. With `other` (side a's gradient, when this is side
// b) it also sums ⟨g_a, g_a⟩, ⟨g_a, g_b⟩ and ⟨g_b, g_b⟩ over the final g, as dot() would (mgda[0..2]).
CMERGE_VECTOR_CLONES
double RightPass(const float* __restrict delta, const float* __restrict prod, float* __restrict g, size_t len,
                 const float* __restrict other, double* mgda) {
  RightSums r;
  if (other) {
    RightLoop<true>(delta, prod, g, other, len, r);
    mgda[0] = r.aa.Total(), mgda[1] = r.ab.Total(), mgda[2] = r.bb.Total();
  } else {
    RightLoop<false>(delta, prod, g, other, len, r);
  }
  return r.dr.Total();
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
    loss += LeftPass(delta, prod, g, len);
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
    loss += RightPass(delta, prod, g, len, other, mgda);
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

// One Adam step over the tensor: g = sol0·g_a + sol1·g_b, the moments, and w. No sums run across
// elements, so any vector width gives the JavaScript loop's bits, provided no product is fused into
// an FMA (binding.gyp: -ffp-contract=off) and sqrt sets no errno (-fno-math-errno; v ≥ 0 anyway).
// Scalar, its sqrt and two divisions per element were half of this file's time (DOP on vitb32-l2).
CMERGE_VECTOR_CLONES
void AdamUpdate(float* __restrict w, float* __restrict pm, float* __restrict pv, const float* __restrict pa,
                const float* __restrict pb, size_t len, double sol0, double sol1, double stepSize, double bc2sqrt) {
  constexpr double beta1 = 0.9, beta2 = 0.999, adamEps = 1e-8;
  for (size_t i = 0; i < len; ++i) {
    const double g = sol0 * pa[i] + sol1 * pb[i];
    const double mi = beta1 * pm[i] + (1 - beta1) * g;
    const double vi = beta2 * pv[i] + (1 - beta2) * g * g;
    pm[i] = static_cast<float>(mi);
    pv[i] = static_cast<float>(vi);
    w[i] = static_cast<float>(w[i] - (stepSize * mi) / (std::sqrt(vi) / bc2sqrt + adamEps));
  }
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
    AdamUpdate(w, mAvg.data(), vAvg.data(), ga.data(), gb.data(), len, sol0, sol1, o.stepSize[step - 1],
               o.bc2sqrt[step - 1]);
    if (step == o.numSteps && o.mgda) ema0 = sol0, ema1 = sol1;
  }
  r.weightA = ema0;
  r.weightB = ema1;
  return r;
}

}  // namespace cmerge

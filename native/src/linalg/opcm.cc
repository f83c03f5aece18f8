// See opcm.h. The same blocks, products and float64 sums, in the same order, as the JavaScript
// (engine/ops/opcm-clean.ts): both give the same bits.
#include "opcm.h"

#include "big_alloc.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

namespace cmerge {

namespace {
using std::size_t;

// Rows per block of the τ-side products: blocks of ~4 Mi elements (as blockRows in opcm-clean.ts).
int BlockRows(int m, int width) { return std::max(1, std::min(m, (4 << 20) / std::max(1, width))); }

// τ_b −= removed_b, adding Σ removed² and Σ cleaned² (over the stored float32 values) in element order.
// GCC packs the two sums into one vector and keeps it in memory, so each element waited on a store
// and a load (most of this function's time in a perf profile); as two scalar chains they stay in
// registers. Same order, same bits.
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-slp-vectorize")))
#endif
void SubtractAndSum(float* tb, const float* removed, size_t len, OpcmSums& sums) {
  double removedSq = sums.removedSq, cleanedSq = sums.cleanedSq;
  for (size_t i = 0; i < len; ++i) {
    const double x = removed[i];
    const float res = static_cast<float>(tb[i] - x);
    tb[i] = res;
    removedSq += x * x;
    cleanedSq += static_cast<double>(res) * res;
  }
  sums.removedSq = removedSq;
  sums.cleanedSq = cleanedSq;
}
}  // namespace

OpcmSums OpcmApply(float* tau, float* u, const float* v, int m, int n, int k, int rank) {
  const int r = std::min(m, n);
  const int rows = BlockRows(m, std::max(n, r));
  std::vector<double> d(r, 0.0);
  std::vector<float> pkk(static_cast<size_t>(k) * k, 0.0f), block(static_cast<size_t>(k) * k);
  BigVector<float> tv(static_cast<size_t>(rows) * std::max(n, r));
  // 1. T_b = τ_b V; d_j += Σ_rows U_ij T_ij (j ≥ k); P_kk += U_kᵀ T_k.
  for (int i0 = 0; i0 < m; i0 += rows) {
    const int b = std::min(rows, m - i0);
    const float* ub = u + static_cast<size_t>(i0) * r;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, r, n, 1.0f, tau + static_cast<size_t>(i0) * n, n, v, r,
                0.0f, tv.data(), r);
    for (int i = 0; i < b; ++i) {
      const float* ur = ub + static_cast<size_t>(i) * r;
      const float* tr = tv.data() + static_cast<size_t>(i) * r;
      for (int j = k; j < r; ++j) d[j] += static_cast<double>(ur[j]) * static_cast<double>(tr[j]);
    }
    if (k > 0) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, k, b, 1.0f, ub, r, tv.data(), r, 0.0f, block.data(), k);
      for (size_t i = 0; i < block.size(); ++i) pkk[i] += block[i];
    }
  }
  std::fill(d.begin() + rank, d.end(), 0.0);  // only the diagonal terms i < rank are removed
  // 2. W = U Q in place: leading k columns U_k P_kk, the others d_j u_j.
  std::vector<float> lead(static_cast<size_t>(rows) * std::max(k, 1));
  for (int i0 = 0; i0 < m; i0 += rows) {
    const int b = std::min(rows, m - i0);
    float* ub = u + static_cast<size_t>(i0) * r;
    if (k > 0) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, k, k, 1.0f, ub, r, pkk.data(), k, 0.0f, lead.data(), k);
      for (int i = 0; i < b; ++i)
        std::copy_n(lead.data() + static_cast<size_t>(i) * k, k, ub + static_cast<size_t>(i) * r);
    }
    for (int i = 0; i < b; ++i) {
      float* ur = ub + static_cast<size_t>(i) * r;
      for (int j = k; j < r; ++j) ur[j] = static_cast<float>(ur[j] * d[j]);
    }
  }
  // 3. τ_b −= W_b Vᵀ, with Σ removed² and Σ cleaned² over the stored float32 values.
  OpcmSums sums;
  BigVector<float> removed(static_cast<size_t>(rows) * n);
  for (int i0 = 0; i0 < m; i0 += rows) {
    const int b = std::min(rows, m - i0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, n, r, 1.0f, u + static_cast<size_t>(i0) * r, r, v, r, 0.0f,
                removed.data(), n);
    SubtractAndSum(tau + static_cast<size_t>(i0) * n, removed.data(), static_cast<size_t>(b) * n, sums);
  }
  return sums;
}

}  // namespace cmerge

// Gram-matrix SVD in float64. Steps (S = short side, L = long side of A):
//   1. G = Pᵀ P accumulated over panels P of A viewed as L×S (rows of A if tall, columns if wide),
//      each panel converted to double so every product of float32 inputs is exact.
//   2. G = V Λ Vᵀ with dsyevd (explicit workspace: Debian's LAPACK 3.11 rounds the workspace
//      query through a float and fails past n ≈ 2900).
//   3. X = P V in double: column k is σ_k u_k. Columns are classified by ‖X_k‖ into head
//      (≥ kOrthoTol σ_max: already orthogonal to well below float32 rounding, just normalized),
//      small, and null (≤ kNullTol σ_max, σ reported as 0).
//   4. Squaring the condition number costs the small columns orthogonality (≈ ε σ_max²/(σ_j σ_k)
//      between columns j, k), so the tail (small + null) is projected off the head twice and goes
//      through Householder QR: σ_k = |R_kk|, and null columns, seeded with pseudo-random vectors,
//      come out as an orthonormal completion (never NaN). Well-conditioned inputs skip the QR.
#include "svd.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

namespace cmerge {
namespace {

using std::size_t;

// Copy rows [i0, i0+b) of the L×S view of A into P (b×S row-major double).
void FillPanel(const float* a, int m, int n, bool tall, int i0, int b, double* p) {
  if (tall) {
    const float* src = a + static_cast<size_t>(i0) * n;
    for (size_t t = 0, len = static_cast<size_t>(b) * n; t < len; ++t) p[t] = src[t];
    return;
  }
  // Wide: panel row t is column i0+t of A; walk A row by row so reads stay contiguous.
  for (int j = 0; j < m; ++j) {
    const float* row = a + static_cast<size_t>(j) * n + i0;
    for (int t = 0; t < b; ++t) p[static_cast<size_t>(t) * m + j] = row[t];
  }
}

// dst (rows×cols row-major float) = src (rows×cols col-major double, leading dim ld), in tiles.
void ColMajorToRowMajorF32(const double* src, int rows, int cols, int ld, float* dst) {
  constexpr int T = 64;
  for (int i0 = 0; i0 < rows; i0 += T) {
    const int i1 = std::min(rows, i0 + T);
    for (int k0 = 0; k0 < cols; k0 += T) {
      const int k1 = std::min(cols, k0 + T);
      for (int i = i0; i < i1; ++i)
        for (int k = k0; k < k1; ++k)
          dst[static_cast<size_t>(i) * cols + k] = static_cast<float>(src[static_cast<size_t>(k) * ld + i]);
    }
  }
}

}  // namespace

std::string SvdGram(const float* a, int m, int n, float* u, double* s, float* v) {
  const bool tall = m >= n;
  const int S = tall ? n : m;
  const int L = tall ? m : n;
  const size_t SS = static_cast<size_t>(S) * S;

  // Panels of at most ~32 MB keep memory bounded for large L; one panel when it fits.
  const int rowsPerPanel = static_cast<int>(std::clamp<size_t>((size_t{4} << 20) / S, 64, L));
  const int panels = (L + rowsPerPanel - 1) / rowsPerPanel;
  std::vector<double> panel(static_cast<size_t>(rowsPerPanel) * S);

  // 1. Gram matrix; RowMajor upper == ColMajor lower of the same symmetric matrix.
  std::vector<double> g(SS, 0.0);
  for (int i0 = 0; i0 < L; i0 += rowsPerPanel) {
    const int b = std::min(rowsPerPanel, L - i0);
    FillPanel(a, m, n, tall, i0, b, panel.data());
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, S, b, 1.0, panel.data(), S, i0 == 0 ? 0.0 : 1.0,
                g.data(), S);
  }

  // 2. Eigendecomposition, ascending eigenvalues; eigenvectors overwrite g column by column.
  std::vector<double> w(S);
  {
    const size_t lwork = 1 + 6 * static_cast<size_t>(S) + 2 * SS;
    const size_t liwork = 3 + 5 * static_cast<size_t>(S);
    if (lwork > 0x7fffffff) return "svd: short side too large for 32-bit LAPACK workspace";
    std::vector<double> work(lwork);
    std::vector<lapack_int> iwork(liwork);
    const lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', 'L', S, g.data(), S, w.data(), work.data(),
                                                static_cast<lapack_int>(lwork), iwork.data(),
                                                static_cast<lapack_int>(liwork));
    if (info != 0) return "svd: dsyevd failed, info=" + std::to_string(info);
  }
  // Short-side factor, col-major S×S, columns in descending eigenvalue order.
  std::vector<double> vs(SS);
  for (int k = 0; k < S; ++k)
    std::copy_n(g.data() + static_cast<size_t>(S - 1 - k) * S, S, vs.data() + static_cast<size_t>(k) * S);
  std::vector<double>().swap(g);

  // 3. X = (L×S view of A) · vs, col-major L×S.
  std::vector<double> x(static_cast<size_t>(L) * S);
  for (int i0 = 0; i0 < L; i0 += rowsPerPanel) {
    const int b = std::min(rowsPerPanel, L - i0);
    if (panels > 1) FillPanel(a, m, n, tall, i0, b, panel.data());
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, b, S, S, 1.0, panel.data(), S, vs.data(), S, 0.0,
                x.data() + i0, L);
  }
  std::vector<double>().swap(panel);

  // Classify by ‖A v_k‖, computed directly and far more accurate than sqrt(λ_k) for small σ.
  std::vector<double> norms(S);
  double nmax = 0.0;
  for (int k = 0; k < S; ++k) {
    norms[k] = cblas_dnrm2(L, x.data() + static_cast<size_t>(k) * L, 1);
    nmax = std::max(nmax, norms[k]);
  }
  // 0 head, 1 small, 2 null (all null when A = 0).
  const auto cls = [&](int k) { return !(norms[k] > kNullTol * nmax) ? 2 : norms[k] >= kOrthoTol * nmax ? 0 : 1; };
  std::vector<int> order(S);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return cls(i) < cls(j); });
  int head = 0, small = 0;
  for (int k = 0; k < S; ++k) {
    if (cls(k) == 0) ++head;
    else if (cls(k) == 1) ++small;
  }

  // q: head columns normalized; small columns raw; null columns get deterministic pseudo-random
  // starters (a random vector is almost surely not in the span of the others, unlike e_i).
  std::vector<double> q(static_cast<size_t>(L) * S), vsp(SS), sigma(S, 0.0);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (int c = 0; c < S; ++c) {
    const int k = order[c];
    std::copy_n(vs.data() + static_cast<size_t>(k) * S, S, vsp.data() + static_cast<size_t>(c) * S);
    double* qc = q.data() + static_cast<size_t>(c) * L;
    if (c < head + small) {
      std::copy_n(x.data() + static_cast<size_t>(k) * L, L, qc);
      if (c < head) {
        sigma[c] = norms[k];
        cblas_dscal(L, 1.0 / norms[k], qc, 1);
      }
    } else {
      for (int i = 0; i < L; ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        qc[i] = static_cast<double>(seed >> 11) * 0x1.0p-52 - 1.0;
      }
    }
  }
  std::vector<double>().swap(x);
  std::vector<double>().swap(vs);

  // 4. Tail (small and null columns): orthogonalize against the head twice (CGS2), then
  //    Householder QR of the tail alone, whose Q spans the projected tail and so stays ⊥ head.
  const int tail = S - head;
  if (tail > 0) {
    double* t = q.data() + static_cast<size_t>(head) * L;
    if (head > 0) {
      std::vector<double> c(static_cast<size_t>(head) * tail);
      for (int pass = 0; pass < 2; ++pass) {
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, head, tail, L, 1.0, q.data(), L, t, L, 0.0, c.data(),
                    head);
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, L, tail, head, -1.0, q.data(), L, c.data(), head, 1.0,
                    t, L);
      }
    }
    std::vector<double> tau(tail);
    lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, L, tail, t, L, tau.data());
    if (info != 0) return "svd: dgeqrf failed, info=" + std::to_string(info);
    std::vector<double> rdiag(small);
    for (int k = 0; k < small; ++k) rdiag[k] = t[static_cast<size_t>(k) * L + k];
    info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, L, tail, tail, t, L, tau.data());
    if (info != 0) return "svd: dorgqr failed, info=" + std::to_string(info);
    for (int k = 0; k < small; ++k) {
      sigma[head + k] = std::fabs(rdiag[k]);
      if (rdiag[k] < 0) cblas_dscal(L, -1.0, t + static_cast<size_t>(k) * L, 1);
    }
  }

  // |R_kk| may reorder nearly equal values: sort descending, moving u and v columns together.
  std::vector<int> perm(S);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int i, int j) { return sigma[i] > sigma[j]; });
  const bool sorted = std::is_sorted(perm.begin(), perm.end());
  std::vector<double> qs, vss;
  const double* qOut = q.data();
  const double* vOut = vsp.data();
  if (!sorted) {
    qs.resize(q.size());
    vss.resize(vsp.size());
    for (int c = 0; c < S; ++c) {
      std::copy_n(q.data() + static_cast<size_t>(perm[c]) * L, L, qs.data() + static_cast<size_t>(c) * L);
      std::copy_n(vsp.data() + static_cast<size_t>(perm[c]) * S, S, vss.data() + static_cast<size_t>(c) * S);
    }
    qOut = qs.data();
    vOut = vss.data();
  }
  for (int c = 0; c < S; ++c) s[c] = sigma[perm[c]];

  if (tall) {
    ColMajorToRowMajorF32(qOut, L, S, L, u);
    ColMajorToRowMajorF32(vOut, S, S, S, v);
  } else {
    ColMajorToRowMajorF32(vOut, S, S, S, u);
    ColMajorToRowMajorF32(qOut, L, S, L, v);
  }
  return {};
}

}  // namespace cmerge

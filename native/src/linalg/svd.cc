// Gram-matrix SVD in float64. Steps (S = short side, L = long side of A):
//   1. G = Pᵀ P accumulated over panels P of A viewed as L×S (rows of A if tall, columns if wide),
//      each panel converted to double so every product of float32 inputs is exact.
//   2. G = V Λ Vᵀ (sym_eigen.h: dsyevd's algorithm with a faster back-transformation).
//   3. X = P V in double: column k is σ_k u_k. Columns are classified by ‖X_k‖ into head
//      (≥ kOrthoTol σ_max: already orthogonal to well below float32 rounding, just normalized),
//      small, and null (≤ kNullTol σ_max, σ reported as 0).
//   4. Squaring the condition number costs the small columns orthogonality (≈ ε σ_max²/(σ_j σ_k)
//      between columns j, k), so the tail (small + null) is projected off the head twice and goes
//      through Householder QR: σ_k = |R_kk|, and null columns, seeded with pseudo-random vectors,
//      come out as an orthonormal completion (never NaN). Well-conditioned inputs skip the QR.
#include "svd.h"

#include "big_alloc.h"
#include "svd_classes.h"
#include "sym_eigen.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

namespace cmerge {
namespace {

using std::size_t;
// Large double work buffers (see big_alloc.h: huge pages, uninitialized unless a value is given).
using Buf = BigVector<double>;

// dst[i·ldd + k] = col(k)[i] for i < rows, k < cols, converted to D. Every layout change in this file
// goes through here. Element by element, one side of the copy strides by a whole row or column; with
// the power-of-two strides of these matrices that thrashes a few cache sets, and it made these copies
// most of this file's own CPU time (docs/performance.md). Here a strip of rows as wide as one cache
// line of the source is copied across all columns: each source line is read once, whole, and the
// strip's destination rows are written front to back, one stream each.
template <class D, class Col>
void CopyTransposed(int rows, int cols, Col col, D* dst, size_t ldd) {
  using Src = std::remove_cv_t<std::remove_pointer_t<decltype(col(0))>>;
  constexpr int kStrip = static_cast<int>(64 / sizeof(Src));
  for (int i0 = 0; i0 < rows; i0 += kStrip) {
    const int i1 = std::min(rows, i0 + kStrip);
    D* d = dst + static_cast<size_t>(i0) * ldd;
    for (int k = 0; k < cols; ++k) {
      const Src* src = col(k);
      for (int i = i0; i < i1; ++i) d[static_cast<size_t>(i - i0) * ldd + k] = static_cast<D>(src[i]);
    }
  }
}

// Copy rows [i0, i0+b) of the L×S view of A into P (b×S row-major double).
void FillPanel(const float* a, int m, int n, bool tall, int i0, int b, double* p) {
  if (tall) {
    const float* src = a + static_cast<size_t>(i0) * n;
    for (size_t t = 0, len = static_cast<size_t>(b) * n; t < len; ++t) p[t] = src[t];
    return;
  }
  // Wide: panel row t is column i0+t of A.
  CopyTransposed(b, m, [=](int j) { return a + static_cast<size_t>(j) * n + i0; }, p, m);
}

// dst (rows×cols row-major float) = src (rows×cols col-major double, leading dim ld).
void ColMajorToRowMajorF32(const double* src, int rows, int cols, int ld, float* dst) {
  CopyTransposed(rows, cols, [=](int k) { return src + static_cast<size_t>(k) * ld; }, dst, cols);
}

// The original in-memory algorithm (holds two L×S double matrices): the fallback of SvdGram when
// the panel-wise tail orthogonalization breaks down (never seen; kept for robustness).
// Steps 1 and 2 of both algorithms: the float64 Gram matrix of the short side, accumulated over
// panels (RowMajor upper == ColMajor lower of the same symmetric matrix), and its eigendecomposition.
// On success g holds the eigenvectors (columns, ascending eigenvalue) and w the eigenvalues.
std::string GramEigen(const float* a, int m, int n, bool tall, int S, int L, int rowsPerPanel, Buf& panel,
                      Buf& g, std::vector<double>& w) {
  const size_t SS = static_cast<size_t>(S) * S;
  g.assign(SS, 0.0);
  for (int i0 = 0; i0 < L; i0 += rowsPerPanel) {
    const int b = std::min(rowsPerPanel, L - i0);
    FillPanel(a, m, n, tall, i0, b, panel.data());
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, S, b, 1.0, panel.data(), S, i0 == 0 ? 0.0 : 1.0,
                g.data(), S);
  }
  return SymmetricEigen(S, g, w);
}

std::string SvdGramDense(const float* a, int m, int n, float* u, double* s, float* v) {
  const bool tall = m >= n;
  const int S = tall ? n : m;
  const int L = tall ? m : n;
  const size_t SS = static_cast<size_t>(S) * S;

  // Panels of at most ~32 MB keep memory bounded for large L; one panel when it fits.
  const int rowsPerPanel = static_cast<int>(std::clamp<size_t>((size_t{4} << 20) / S, 64, L));
  const int panels = (L + rowsPerPanel - 1) / rowsPerPanel;
  Buf panel(static_cast<size_t>(rowsPerPanel) * S);

  // 1-2. Gram matrix and its eigendecomposition.
  Buf g;
  std::vector<double> w;
  if (std::string err = GramEigen(a, m, n, tall, S, L, rowsPerPanel, panel, g, w); !err.empty()) return err;
  // Short-side factor, col-major S×S, columns in descending eigenvalue order.
  Buf vs(SS);
  for (int k = 0; k < S; ++k)
    std::copy_n(g.data() + static_cast<size_t>(S - 1 - k) * S, S, vs.data() + static_cast<size_t>(k) * S);
  Buf().swap(g);

  // 3. X = (L×S view of A) · vs, col-major L×S.
  Buf x(static_cast<size_t>(L) * S);
  for (int i0 = 0; i0 < L; i0 += rowsPerPanel) {
    const int b = std::min(rowsPerPanel, L - i0);
    if (panels > 1) FillPanel(a, m, n, tall, i0, b, panel.data());
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, b, S, S, 1.0, panel.data(), S, vs.data(), S, 0.0,
                x.data() + i0, L);
  }
  Buf().swap(panel);

  // Classify by ‖A v_k‖, computed directly and far more accurate than sqrt(λ_k) for small σ.
  std::vector<double> norms(S);
  for (int k = 0; k < S; ++k) norms[k] = cblas_dnrm2(L, x.data() + static_cast<size_t>(k) * L, 1);
  const ColumnClasses classes = ClassifyColumns(norms);
  const std::vector<int>& order = classes.order;
  const int head = classes.head, small = classes.small;

  // q: head columns normalized; small columns raw; null columns get deterministic pseudo-random
  // starters (a random vector is almost surely not in the span of the others, unlike e_i).
  Buf q(static_cast<size_t>(L) * S), vsp(SS);
  std::vector<double> sigma(S, 0.0);
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
  Buf().swap(x);
  Buf().swap(vs);

  // 4. Tail (small and null columns): orthogonalize against the head twice (CGS2), then
  //    Householder QR of the tail alone, whose Q spans the projected tail and so stays ⊥ head.
  const int tail = S - head;
  if (tail > 0) {
    double* t = q.data() + static_cast<size_t>(head) * L;
    if (head > 0) {
      Buf c(static_cast<size_t>(head) * tail);
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
  Buf qs, vss;
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

}  // namespace

namespace {

// Deterministic pseudo-random value in [-1, 1) for (column, row): null columns are seeded with
// these, and every pass must see the same values, so they are a hash of the position
// (splitmix64), not a running sequence.
inline double RandAt(uint64_t col, uint64_t row) {
  uint64_t z = ((col << 32) | row) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-52 - 1.0;
}

// Null candidates: sqrt(λ_k) ≤ kCandTol sqrt(λ_max). λ_k's absolute error is ~c ε λ_max, so
// sqrt(λ_k) overestimates a true norm below kNullTol σ_max by at most ~1e-6 σ_max: every column
// the direct norm will call null is a candidate (the direct norm decides among candidates).
constexpr double kCandTol = 1e-5;

}  // namespace

// Memory-lean form of the algorithm above (same classification, same accuracy): it never holds an
// L×S double matrix, only S×S ones and panels of ~4 Mi doubles. X = A·V is recomputed per row panel
// instead of stored:
//   pass 1: head columns (σ ≥ kOrthoTol σ_max, classified by sqrt(λ)) are normalized and written
//           to the float32 output; column norms ‖A v_k‖ are accumulated; if there is a tail, the
//           panel sums C = Qhᵀ T and G = Tᵀ T are accumulated too, and M = Qhᵀ Qh when there are
//           random starters (T: the tail columns plus random starters for the null candidates).
//   tail:   the direct norms split the tail into small and null (as before). The tail projected
//           off the head is T2 = T − Qh D: D = 2C − M C with starters (CGS2 folded into one
//           coefficient matrix), else D = C (one projection suffices, see below). Its Gram
//           T2ᵀT2 follows from the sums, and its Cholesky factor R is the R of the Householder QR
//           used before (σ_k = R_kk for small k).
//           The normalized tail columns are nearly orthogonal (cosines ≤ ~c ε σ_max²/(σ_j σ_k)
//           ≤ ~c·0.02 above the null cutoff; random starters ~1/sqrt(L)), so R is well conditioned
//           and Q = T2 R⁻¹ is orthonormal to ~ε.
//   pass 2: (tail only) recompute X per panel (kept from pass 1 when there is one panel), form T2 and Q = T2 R⁻¹, write the tail columns.
// If the Cholesky factorization breaks down (would need nearly dependent tail columns), fall back to
// SvdGramDense.
std::string SvdGram(const float* a, int m, int n, float* u, double* s, float* v) {
  const bool tall = m >= n;
  const int S = tall ? n : m;
  const int L = tall ? m : n;
  const size_t SS = static_cast<size_t>(S) * S;
  float* big = tall ? u : v;    // L×S row-major output (the long-side factor)
  float* small = tall ? v : u;  // S×S row-major output

  const int rowsPerPanel = static_cast<int>(std::clamp<size_t>((size_t{4} << 20) / S, 64, L));
  Buf panel(static_cast<size_t>(rowsPerPanel) * S);

  // 1-2. Gram matrix and its eigendecomposition.
  Buf g;
  std::vector<double> w;
  if (std::string err = GramEigen(a, m, n, tall, S, L, rowsPerPanel, panel, g, w); !err.empty()) return err;
  // Columns in class order (head by sqrt(λ), descending λ within each class): vsp col c = v_{order[c]}.
  std::vector<double> est(S);
  double emax = 0.0;
  for (int k = 0; k < S; ++k) {
    est[k] = std::sqrt(std::max(w[S - 1 - k], 0.0));
    emax = std::max(emax, est[k]);
  }
  int head = 0;
  while (head < S && emax > 0.0 && est[head] >= kOrthoTol * emax) ++head;  // est is descending
  Buf vsp(SS);
  for (int k = 0; k < S; ++k)
    std::copy_n(g.data() + static_cast<size_t>(S - 1 - k) * S, S, vsp.data() + static_cast<size_t>(k) * S);
  Buf().swap(g);
  const int tail = S - head;
  // Null candidates among the tail, each with its random starter column (tail index order).
  std::vector<int> cand;
  for (int k = head; k < S; ++k)
    if (!(est[k] > kCandTol * emax)) cand.push_back(k);
  const int nc = static_cast<int>(cand.size());
  const int tw = tail + nc;  // columns of T: tail X columns, then the random starters

  // 3. Pass 1. xp: b×(S + nc) col-major (ld b): X panel, then the random starters, so the tail X
  //    columns and the starters are one contiguous block T.
  Buf xp(static_cast<size_t>(rowsPerPanel) * (S + nc));
  std::vector<double> sumsq(S, 0.0);
  // M = QhᵀQh only with random starters (see the tail step below).
  const bool useM = nc > 0 && head > 0;
  Buf cm, mm, gm;  // C (head×tw), M (head×head), G (tw×tw), col-major
  if (tail > 0) {
    cm.assign(static_cast<size_t>(head) * tw, 0.0);
    if (useM) mm.assign(static_cast<size_t>(head) * head, 0.0);
    gm.assign(static_cast<size_t>(tw) * tw, 0.0);
  }
  // With a single panel (every ViT-sized matrix), GramEigen left it filled and pass 1's X stays in
  // xp for pass 2: neither is redone.
  const bool onePanel = rowsPerPanel >= L;
  // With several panels and a tail, pass 2 needs X again. Up to kKeepXBytes it is kept from pass 1
  // (panel by panel, the same layout as xp) instead of recomputed: the recomputation is a third of
  // the double-precision products of a 5632×2048 tensor. Larger ones (lm_head) recompute, to bound
  // memory. The values are the same either way.
#ifndef CMERGE_SVD_KEEP_X_MIB
#define CMERGE_SVD_KEEP_X_MIB 128  // overridable only to test that keeping X changes no bit
#endif
  constexpr size_t kKeepXBytes = size_t{CMERGE_SVD_KEEP_X_MIB} << 20;
  const bool keepX = !onePanel && tail > 0 && static_cast<size_t>(L) * S * sizeof(double) <= kKeepXBytes;
  Buf xs;
  if (keepX) xs.resize(static_cast<size_t>(L) * S);
  const auto computeX = [&](int i0, int b, int cols) {
    if (!onePanel) FillPanel(a, m, n, tall, i0, b, panel.data());
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, b, cols, S, 1.0, panel.data(), S, vsp.data(), S, 0.0,
                xp.data(), b);
    for (int c = 0; c < head; ++c) cblas_dscal(b, 1.0 / est[c], xp.data() + static_cast<size_t>(c) * b, 1);
  };
  for (int i0 = 0; i0 < L; i0 += rowsPerPanel) {
    const int b = std::min(rowsPerPanel, L - i0);
    computeX(i0, b, S);
    if (keepX) std::copy_n(xp.data(), static_cast<size_t>(b) * S, xs.data() + static_cast<size_t>(i0) * S);
    for (int c = 0; c < S; ++c) {
      const double* xc = xp.data() + static_cast<size_t>(c) * b;
      sumsq[c] += (c < head ? est[c] * est[c] : 1.0) * cblas_ddot(b, xc, 1, xc, 1);
    }
    CopyTransposed(b, head, [&](int c) { return xp.data() + static_cast<size_t>(c) * b; },
                   big + static_cast<size_t>(i0) * S, S);
    if (tail == 0) continue;
    for (int j = 0; j < nc; ++j) {
      double* rc = xp.data() + static_cast<size_t>(S + j) * b;
      for (int i = 0; i < b; ++i) rc[i] = RandAt(cand[j], i0 + i);
    }
    const double* qh = xp.data();
    const double* t = xp.data() + static_cast<size_t>(head) * b;
    if (head > 0) {
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, head, tw, b, 1.0, qh, b, t, b, 1.0, cm.data(), head);
      if (useM) cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, head, b, 1.0, qh, b, 1.0, mm.data(), head);
    }
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, tw, b, 1.0, t, b, 1.0, gm.data(), tw);
  }
  std::vector<double> norms(S);
  double nmax = 0.0;
  for (int c = 0; c < S; ++c) {
    norms[c] = std::sqrt(sumsq[c]);
    nmax = std::max(nmax, norms[c]);
  }
  std::vector<double> sigma(S, 0.0);
  for (int c = 0; c < head; ++c) sigma[c] = norms[c];

  // Output column c (before sorting) uses short-side vector vcol[c] (a vsp column).
  std::vector<int> vcol(S);
  std::iota(vcol.begin(), vcol.end(), 0);
  if (tail > 0) {
    // 4. Split the tail: small (X column) first, then null (random starter), each in λ order.
    //    src[j]: the T column (0..tw) of tail column j.
    std::vector<int> src, nulls;
    for (int k = head, j = 0; k < S; ++k) {
      while (j < nc && cand[j] < k) ++j;
      const bool isCand = j < nc && cand[j] == k;
      if (isCand && !(norms[k] > kNullTol * nmax)) nulls.push_back(k);
      else src.push_back(k - head), vcol[head + static_cast<int>(src.size()) - 1] = k;
    }
    const int nsmall = static_cast<int>(src.size());
    for (size_t i = 0; i < nulls.size(); ++i) {
      const int k = nulls[i];
      const int j = static_cast<int>(std::lower_bound(cand.begin(), cand.end(), k) - cand.begin());
      src.push_back(tail + j);
      vcol[head + nsmall + static_cast<int>(i)] = k;
    }
    // Gathered C (head×tail) and G (tail×tail, upper from gm's upper triangle).
    Buf c(static_cast<size_t>(head) * tail), g2(static_cast<size_t>(tail) * tail, 0.0);
    for (int j = 0; j < tail; ++j) {
      std::copy_n(cm.data() + static_cast<size_t>(src[j]) * head, head, c.data() + static_cast<size_t>(j) * head);
      for (int i = 0; i <= j; ++i) {
        const int p = std::min(src[i], src[j]), q = std::max(src[i], src[j]);
        g2[static_cast<size_t>(j) * tail + i] = gm[static_cast<size_t>(q) * tw + p];
      }
    }
    Buf().swap(cm);
    Buf().swap(gm);
    // With random starters: D = 2C − M C (two CGS passes in one), F = M D − C; T2ᵀT2 = G + Dᵀ F − Cᵀ D.
    // A starter lies mostly in the head's span, so T2 is a small remainder and the Gram of one
    // projection would carry the head's departure from orthonormality (~c·1e-10) amplified by
    // ‖C‖²/‖T2‖² (measured: 2e-7 in a unit norm). The X columns of the tail are nearly orthogonal to
    // the head (cosines ≤ ~c ε σ_max²/(σ_j σ_k)), so without starters one projection is exact to
    // far below rounding: D = C and T2ᵀT2 = G − CᵀC, and M (head²·L flops) is never formed.
    Buf d(c), f;
    if (useM) {
      f = c;
      cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, head, tail, -1.0, mm.data(), head, c.data(), head, 2.0,
                  d.data(), head);
      cblas_dsymm(CblasColMajor, CblasLeft, CblasUpper, head, tail, 1.0, mm.data(), head, d.data(), head, -1.0,
                  f.data(), head);
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, tail, tail, head, 1.0, d.data(), head, f.data(), head, 1.0,
                  g2.data(), tail);
      cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, tail, tail, head, -1.0, c.data(), head, d.data(), head,
                  1.0, g2.data(), tail);
    } else if (head > 0) {
      cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, tail, head, -1.0, c.data(), head, 1.0, g2.data(), tail);
    }
    Buf().swap(mm);
    Buf().swap(f);
    Buf().swap(c);
    lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', tail, g2.data(), tail);
    bool ok = info == 0;
    for (int j = 0; ok && j < tail; ++j) {
      const double r = g2[static_cast<size_t>(j) * tail + j];
      ok = std::isfinite(r) && r > 0.0;
      if (j < nsmall) sigma[head + j] = r;
    }
    if (!ok) {
      // Free everything large before the dense fallback allocates its own.
      Buf().swap(xp);
      Buf().swap(xs);
      Buf().swap(panel);
      Buf().swap(vsp);
      Buf().swap(g2);
      return SvdGramDense(a, m, n, u, s, v);
    }
    // 5. Pass 2: T2 = T − Qh D, Q = T2 R⁻¹ per panel. Only the X columns up to the last small one
    //    are needed.
    const int xcols = head + (nsmall > 0 ? src[nsmall - 1] + 1 : 0);
    Buf t2(static_cast<size_t>(rowsPerPanel) * tail);
    for (int i0 = 0; i0 < L; i0 += rowsPerPanel) {
      const int b = std::min(rowsPerPanel, L - i0);
      if (xcols > 0 && !onePanel && !keepX) computeX(i0, b, xcols);
      const double* xb = keepX ? xs.data() + static_cast<size_t>(i0) * S : xp.data();
      for (int j = 0; j < tail; ++j) {
        double* tc = t2.data() + static_cast<size_t>(j) * b;
        if (j < nsmall) std::copy_n(xb + static_cast<size_t>(head + src[j]) * b, b, tc);
        else
          for (int i = 0; i < b; ++i) tc[i] = RandAt(vcol[head + j], i0 + i);
      }
      if (head > 0)
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, b, tail, head, -1.0, xb, b, d.data(), head, 1.0,
                    t2.data(), b);
      cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, b, tail, 1.0, g2.data(), tail,
                  t2.data(), b);
      CopyTransposed(b, tail, [&](int j) { return t2.data() + static_cast<size_t>(j) * b; },
                     big + static_cast<size_t>(i0) * S + head, S);
    }
  }

  // 6. Sort descending by σ (|R_kk| may reorder nearly equal values), permuting the output rows in
  //    place, and write the short-side factor.
  std::vector<int> perm(S);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int i, int j) { return sigma[i] > sigma[j]; });
  if (!std::is_sorted(perm.begin(), perm.end())) {
    std::vector<float> row(S);
    for (int i = 0; i < L; ++i) {
      float* r = big + static_cast<size_t>(i) * S;
      for (int c = 0; c < S; ++c) row[c] = r[perm[c]];
      std::copy(row.begin(), row.end(), r);
    }
  }
  for (int c = 0; c < S; ++c) s[c] = sigma[perm[c]];
  CopyTransposed(S, S, [&](int c) { return vsp.data() + static_cast<size_t>(vcol[perm[c]]) * S; }, small, S);
  return {};
}

}  // namespace cmerge

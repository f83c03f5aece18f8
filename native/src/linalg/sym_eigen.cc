// See sym_eigen.h. dormtr applies Q through dlarfb (small blocks, triangular products); on the
// development machine that ran at about half the dgemm rate and was ~40 % of dsyevd's time on
// 768- and 2048-sized Gram matrices (docs/performance.md). Here each block of reflectors is copied
// into a dense V (explicit unit diagonal, zeros above it) so that applying I − V T Vᵀ is two dgemm
// calls and a small dtrmm: the same arithmetic, rounded differently (≤ ~1e-15 from dormtr's result).
// No scaling step as in dsyevd: a Gram matrix of finite float32 values lies far inside the range
// where dsyevd would scale (its largest entry is below 2^256 · n, and at least 2^-298 unless A = 0).
#include "sym_eigen.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cstddef>

namespace cmerge {

namespace {
using std::size_t;

// Reflectors per block: larger blocks make the products faster and the wasted zero triangle larger.
int BlockSize(int n) { return n > 1024 ? 128 : 64; }

// z := Q z, Q = H(0)···H(n−2) as dsytrd('L') left it in a and tau: reflector j acts on rows j+1..n−1,
// its vector below the subdiagonal in column j of a (the unit entry implicit).
void ApplyQ(int n, const double* a, const double* tau, double* z) {
  const int k = n - 1, nb = BlockSize(n);
  if (k <= 0) return;
  BigVector<double> t(static_cast<size_t>(nb) * nb), v(static_cast<size_t>(k) * nb), w(static_cast<size_t>(nb) * n);
  // Q z = H(0)(H(1)(··· H(k−1) z)): blocks from the last.
  for (int i = ((k - 1) / nb) * nb; i >= 0; i -= nb) {
    const int ib = std::min(nb, k - i), rows = k - i;
    const double* vs = a + 1 + i + static_cast<size_t>(i) * n;  // A(i+1.., i..), leading dimension n
    LAPACKE_dlarft_work(LAPACK_COL_MAJOR, 'F', 'C', rows, ib, vs, n, tau + i, t.data(), nb);
    for (int j = 0; j < ib; ++j) {
      double* col = v.data() + static_cast<size_t>(j) * rows;
      const double* src = vs + static_cast<size_t>(j) * n;
      std::fill_n(col, j, 0.0);
      col[j] = 1.0;
      std::copy(src + j + 1, src + rows, col + j + 1);
    }
    double* zi = z + 1 + i;  // rows i+1..n−1 of z, all n columns
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, ib, n, rows, 1.0, v.data(), rows, zi, n, 0.0, w.data(), ib);
    cblas_dtrmm(CblasColMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, ib, n, 1.0, t.data(), nb, w.data(),
                ib);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, rows, n, ib, -1.0, v.data(), rows, w.data(), ib, 1.0, zi, n);
  }
}

}  // namespace

std::string SymmetricEigen(int n, BigVector<double>& a, std::vector<double>& w) {
  w.assign(n, 0.0);
  if (n == 0) return {};  // LAPACK wants leading dimensions ≥ 1
  const size_t nn = static_cast<size_t>(n) * n;
  // dstedc's workspace for COMPZ = 'I' (explicit sizes: Debian's LAPACK 3.11 rounds workspace
  // queries through a float, which fails past n ≈ 2900).
  const size_t lwork = std::max<size_t>(1 + 4 * static_cast<size_t>(n) + nn, static_cast<size_t>(n) * 64);
  if (lwork > 0x7fffffff) return "svd: short side too large for 32-bit LAPACK workspace";
  std::vector<double> e(std::max(1, n - 1)), tau(std::max(1, n - 1));
  BigVector<double> work(lwork);
  lapack_int info = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', n, a.data(), n, w.data(), e.data(), tau.data(),
                                        work.data(), static_cast<lapack_int>(lwork));
  if (info != 0) return "svd: dsytrd failed, info=" + std::to_string(info);
  BigVector<double> z(nn);
  std::vector<lapack_int> iwork(3 + 5 * static_cast<size_t>(n));
  info = LAPACKE_dstedc_work(LAPACK_COL_MAJOR, 'I', n, w.data(), e.data(), z.data(), n, work.data(),
                             static_cast<lapack_int>(lwork), iwork.data(), static_cast<lapack_int>(iwork.size()));
  if (info != 0) return "svd: dstedc failed, info=" + std::to_string(info);
  BigVector<double>().swap(work);
  ApplyQ(n, a.data(), tau.data(), z.data());
  a.swap(z);
  return {};
}

}  // namespace cmerge

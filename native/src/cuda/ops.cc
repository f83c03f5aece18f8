// Products, OPCM's cleaning and DOP's optimisation on the device. Column-major throughout: a
// row-major m×n host matrix X is uploaded as is and is the column-major n×m matrix Xᵀ.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ops.h"

namespace cmerge::cuda {
namespace {

// Row-major rows×cols host matrix from a column-major rows×cols device matrix.
void DownloadTransposed(Session& s, const float* dev, int rows, int cols, float* host) {
  std::vector<float> tmp(static_cast<size_t>(rows) * cols);
  s.dev.Download(tmp.data(), dev, tmp.size() * sizeof(float));
  for (int j = 0; j < cols; ++j)
    for (int i = 0; i < rows; ++i) host[static_cast<size_t>(i) * cols + j] = tmp[static_cast<size_t>(j) * rows + i];
}

}  // namespace

void Gemm(Session& s, bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
          int ldc) {
  const float one = 1.0f, zero = 0.0f;
  s.dev.CheckBlas(s.dev.api.cublasSgemm(s.dev.blas(), ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m,
                                        n, k, &one, a, lda, b, ldb, &zero, c, ldc),
                  "cublasSgemm");
}

void SumPartials(Session& s, const double* partials, int count, double* out) {
  void* args[] = {&partials, &count, &out};
  s.dev.Launch(kSumF64, 1, args);
}

void Sgemm(Session& s, Buf<float>& da, Buf<float>& db, float* c, int m, int k, int n, bool ta, bool tb) {
  // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: the same buffers, operands swapped.
  Buf<float> dc(s, static_cast<size_t>(m) * n);
  Gemm(s, tb, ta, n, m, k, db.get(), tb ? k : n, da.get(), ta ? m : k, dc.get(), n);
  da.reset(), db.reset();
  s.dev.Download(c, dc.get(), static_cast<size_t>(m) * n * sizeof(float));
}

void SvdToHost(Session& s, Buf<float>& da, int m, int n, float* u, double* sv, float* v) {
  DevSvd r = GramSvd(s, da, m, n);
  DownloadTransposed(s, r.u.get(), m, r.r, u);
  DownloadTransposed(s, r.v.get(), n, r.r, v);
  std::copy(r.s.begin(), r.s.end(), sv);
}

std::pair<double, double> OpcmApply(Session& s, const DevSvd& svd, Buf<float>& t, int k, int rank) {
  Device& dev = s.dev;
  const int m = svd.m, n = svd.n, r = svd.r;
  const size_t mn = static_cast<size_t>(m) * n, mr = static_cast<size_t>(m) * r;
  // t: τᵀ, n×m
  // T = τ V (m×r) = (τᵀ)ᵀ V
  Buf<float> tv(s, mr);
  Gemm(s, true, false, m, r, n, t.get(), n, svd.v.get(), n, tv.get(), m);
  // d_i = u_iᵀ τ v_i in float64
  Buf<double> d(s, r);
  {
    const float* up = svd.u.get();
    const float* tp = tv.get();
    double* dp = d.get();
    int rows = m, ld = m;
    void* args[] = {&up, &tp, &rows, &ld, &dp};
    dev.Launch(kColDotF32, static_cast<unsigned>(r), args);
  }
  // W = U Q, over T's buffer: leading k columns U_k P_kk (P_kk = U_kᵀ T_k), the others d_i u_i.
  if (k > 0) {
    Buf<float> pkk(s, static_cast<size_t>(k) * k);
    Gemm(s, true, false, k, k, m, svd.u.get(), m, tv.get(), m, pkk.get(), k);
    Gemm(s, false, false, m, k, k, svd.u.get(), m, pkk.get(), k, tv.get(), m);
    dev.Sync();
  }
  if (rank > k) {
    const float* src = svd.u.get() + static_cast<size_t>(k) * m;
    const double* dp = d.get() + k;
    float* dst = tv.get() + static_cast<size_t>(k) * m;
    int ld = m, rows = m, squared = 0;
    void* args[] = {&src, &ld, &rows, &dp, &squared, &dst, &ld};
    dev.Launch(kScaleColsF32, static_cast<unsigned>(rank - k), args);
  }
  // removedᵀ = V Wᵀ (n×m) over W's first `rank` columns; cleanedᵀ = τᵀ − removedᵀ, both squared norms.
  Buf<float> rem(s, mn);
  Gemm(s, false, true, n, m, rank, svd.v.get(), n, tv.get(), m, rem.get(), n);
  tv.reset();
  const long long cnt = static_cast<long long>(mn);
  const unsigned blocks = Blocks(cnt);
  Buf<double> partials(s, 2 * static_cast<size_t>(blocks)), sums(s, 2);
  {
    float* tp = t.get();
    const float* rp = rem.get();
    long long c = cnt;
    double* pp = partials.get();
    void* args[] = {&tp, &rp, &c, &pp};
    dev.Launch(kSubSumsqF32, blocks, args);
  }
  SumPartials(s, partials.get(), static_cast<int>(blocks), sums.get());
  SumPartials(s, partials.get() + blocks, static_cast<int>(blocks), sums.get() + 1);
  rem.reset();
  double h[2] = {0, 0};
  dev.Download(h, sums.get(), sizeof h);
  return {h[0], h[1]};
}

}  // namespace cmerge::cuda

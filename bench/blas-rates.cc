// The BLAS rates an OPCM step leans on, in this process's OpenBLAS kernel set (OPENBLAS_CORETYPE,
// else OpenBLAS's CPU detection), one thread: bench/blas-kernels.ts runs it once per kernel set.
// Shapes are TinyLlama's MLP tensor (5632×2048) and its Gram matrix (2048):
//   dgemm  5632×2048×2048   X = P V           (float64)
//   sgemm  5632×2048×2048   T = τ V           (float32)
//   dsyrk  2048, k = 5632   G = PᵀP           (float64)
//   dsymv  2048             dsytrd's half     (float64, memory-bound)
//   dsytrd 2048             the tridiagonal reduction (seconds)
// Prints: core dgemm sgemm dsyrk dsymv (GFLOP/s, best of 3) dsytrd (s)
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

extern "C" void dsytrd_(const char*, const int*, double*, const int*, double*, double*, double*, double*,
                        const int*, int*);

namespace {

double Best(int reps, auto&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main() {
  const int m = 5632, n = 2048;
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(-1, 1);
  std::vector<double> a(size_t{m} * n), b(size_t{n} * n), c(size_t{m} * n), g(size_t{n} * n);
  for (auto& x : a) x = u(rng);
  for (auto& x : b) x = u(rng);
  std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end()), cf(c.size());
  const double gemm = 2.0 * m * n * n;
  const double dgemm = Best(3, [&] {
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, n, n, 1, a.data(), m, b.data(), n, 0, c.data(), m);
  });
  const double sgemm = Best(3, [&] {
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, m, n, n, 1, af.data(), m, bf.data(), n, 0, cf.data(), m);
  });
  const double dsyrk = Best(3, [&] {
    cblas_dsyrk(CblasColMajor, CblasLower, CblasTrans, n, m, 1, a.data(), m, 0, g.data(), n);
  });
  // G is symmetric positive semi-definite, as the engine's Gram matrices are
  std::vector<double> x(n, 1.0), y(n);
  const double dsymv = Best(20, [&] {
    cblas_dsymv(CblasColMajor, CblasLower, n, 1, g.data(), n, x.data(), 1, 0, y.data(), 1);
  });
  std::vector<double> w(g.size()), d(n), e(n), tau(n);
  int lwork = -1, info = 0;
  double query = 0;
  dsytrd_("L", &n, w.data(), &n, d.data(), e.data(), tau.data(), &query, &lwork, &info);
  lwork = static_cast<int>(query);
  std::vector<double> work(lwork);
  const double dsytrd = Best(3, [&] {
    std::copy(g.begin(), g.end(), w.begin());
    dsytrd_("L", &n, w.data(), &n, d.data(), e.data(), tau.data(), work.data(), &lwork, &info);
  });
  std::printf("%s %.1f %.1f %.1f %.1f %.3f\n", openblas_get_corename(), gemm / dgemm * 1e-9, gemm / sgemm * 1e-9,
              1.0 * m * n * n / dsyrk * 1e-9, 2.0 * n * n / dsymv * 1e-9, dsytrd);
  return info == 0 ? 0 : 1;
}

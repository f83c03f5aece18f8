// The BLAS/LAPACK calls that one OPCM cleaning needs, and nothing else, timed per tensor: what
// cmerge's arithmetic costs on this machine with every overhead (conversions, copies, scaling
// loops, allocation, scheduling) taken away. bench/llama-floor.ts builds and runs it, alone and as
// two processes side by side (both cores busy, as in a step).
//   kernel-floor DIR NAME,M,N ...   (DIR/NAME.tau1.f32 and DIR/NAME.tau2.f32, from extract_layer.py)
// Per tensor (S = short side, L = long side, r = S), the calls of native/src/linalg/svd.cc and
// opcm.cc on the same shapes:
//   gram  dsyrk  G = PᵀP                 L·S² flops, float64
//   eigen        G = V Λ Vᵀ              sym_eigen.cc as the engine runs it
//   x     dgemm  X = P V                 2·L·S², float64
//   tv    sgemm  T = τ V                 2·L·S², float32
//   wv    sgemm  τ −= W Vᵀ               2·L·S², float32
// The SVD's tail (re-orthogonalization of columns below 1e-4 σ_max) is left out: it is extra work
// on some data, so leaving it out keeps this a lower bound. Prints one line per tensor:
//   name gram eigen x tv wv (seconds)
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "sym_eigen.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<float> ReadF32(const std::string& path, size_t count) {
  std::vector<float> v(count);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f || std::fread(v.data(), sizeof(float), count, f) != count) {
    std::fprintf(stderr, "cannot read %zu floats from %s\n", count, path.c_str());
    std::exit(1);
  }
  std::fclose(f);
  return v;
}

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: kernel-floor DIR NAME,M,N ...\n");
    return 2;
  }
  const std::string dir = argv[1];
  for (int a = 2; a < argc; ++a) {
    char name[512];
    int m = 0, n = 0;
    if (std::sscanf(argv[a], "%511[^,],%d,%d", name, &m, &n) != 3) return 2;
    const bool tall = m >= n;
    const int S = tall ? n : m, L = tall ? m : n;
    const size_t mn = static_cast<size_t>(m) * n;
    const std::vector<float> prev = ReadF32(dir + "/" + name + ".tau1.f32", mn);
    std::vector<float> tau = ReadF32(dir + "/" + name + ".tau2.f32", mn);
    // P: the L×S view of S_1 in float64, col-major S×L (as FillPanel leaves each panel).
    cmerge::BigVector<double> p(mn);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        const double x = prev[static_cast<size_t>(i) * n + j];
        if (tall) p[static_cast<size_t>(i) * n + j] = x;
        else p[static_cast<size_t>(j) * m + i] = x;
      }

    auto t = Clock::now();
    cmerge::BigVector<double> g(static_cast<size_t>(S) * S, 0.0);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, S, L, 1.0, p.data(), S, 0.0, g.data(), S);
    const double gram = Since(t);

    t = Clock::now();
    std::vector<double> w;
    if (std::string err = cmerge::SymmetricEigen(S, g, w); !err.empty()) {
      std::fprintf(stderr, "%s\n", err.c_str());
      return 1;
    }
    const double eigen = Since(t);

    t = Clock::now();
    cmerge::BigVector<double> x(static_cast<size_t>(L) * S);
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, L, S, S, 1.0, p.data(), S, g.data(), S, 0.0, x.data(), L);
    const double xs = Since(t);

    // U (m×S) and V (n×S) row-major float32, from X and the eigenvectors (values do not matter
    // for the timing; shapes and layouts are the engine's).
    std::vector<float> u(static_cast<size_t>(m) * S), v(static_cast<size_t>(n) * S);
    for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(tall ? x[i] : g[i % g.size()]);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(tall ? g[i % g.size()] : x[i]);

    t = Clock::now();
    std::vector<float> tv(static_cast<size_t>(m) * S);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, S, n, 1.0f, tau.data(), n, v.data(), S, 0.0f,
                tv.data(), S);
    const double tvs = Since(t);

    t = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, S, -1.0f, u.data(), S, v.data(), S, 1.0f, tau.data(),
                n);
    const double wv = Since(t);
    std::printf("%s %.4f %.4f %.4f %.4f %.4f\n", name, gram, eigen, xs, tvs, wv);
    std::fflush(stdout);
  }
  return 0;
}

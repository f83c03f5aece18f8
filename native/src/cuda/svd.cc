// GramSvd: the dense form of native/src/linalg/svd.cc on the device. Layout: the row-major m×n
// input is, for cuBLAS, the column-major n×m matrix Aᵀ. With S the short and L the long side,
// P is the L×S view (A if tall, Aᵀ if wide): the buffer holds Pᵀ (S×L) when tall, P (L×S) when wide.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>

#include "ops.h"
#include "../linalg/svd_classes.h"  // the CPU engine's column classes and thresholds

namespace cmerge::cuda {
namespace {

// dst column c = src column idx[c] (× scale[c]); float64 or float32 out (the kernel for T).
template <typename T>
void Gather(Session& s, const double* src, int lds, int rows, const std::vector<int>& idx, const std::vector<double>* scale,
            T* dst, int ldd) {
  if (idx.empty()) return;
  Buf<int> di(s, idx.size());
  s.dev.Upload(di.get(), idx.data(), idx.size() * sizeof(int));
  Buf<double> ds;
  if (scale) {
    ds = Buf<double>(s, scale->size());
    s.dev.Upload(ds.get(), scale->data(), scale->size() * sizeof(double));
  }
  const int* ip = di.get();
  const double* sp = scale ? ds.get() : nullptr;
  void* args[] = {&src, &lds, &rows, &ip, &sp, &dst, &ldd};
  s.dev.Launch(std::is_same_v<T, float> ? kGatherColsF64ToF32 : kGatherColsF64, static_cast<unsigned>(idx.size()), args);
  s.dev.Sync();  // di/ds are freed on return
}

}  // namespace

DevSvd GramSvd(Session& s, Buf<float>& a, int m, int n) {
  Device& dev = s.dev;
  const Api& api = dev.api;
  const bool tall = m >= n;
  const int S = tall ? n : m, L = tall ? m : n;
  const size_t LS = static_cast<size_t>(L) * S, SS = static_cast<size_t>(S) * S;

  // 1. Float64 copy and the Gram matrix G = PᵀP (lower triangle).
  Buf<double> d(s, LS);
  {
    const float* src = a.get();
    double* dst = d.get();
    long long cnt = static_cast<long long>(LS);
    void* args[] = {&src, &dst, &cnt};
    dev.Launch(kF32ToF64, Blocks(cnt), args);
  }
  a.reset();
  Buf<double> g(s, SS);
  const double one = 1.0, zero = 0.0, minus = -1.0;
  dev.CheckBlas(api.cublasDsyrk(dev.blas(), CUBLAS_FILL_MODE_LOWER, tall ? CUBLAS_OP_N : CUBLAS_OP_T, S, L, &one,
                                d.get(), tall ? S : L, &zero, g.get(), S),
                "cublasDsyrk");
  // 2. G = V Λ Vᵀ (eigenvalues ascending).
  {
    Buf<double> w(s, S);
    Buf<int> info(s, 1);
    int lwork = 0;
    dev.CheckSolver(api.cusolverDnDsyevd_bufferSize(dev.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, S,
                                                    g.get(), S, w.get(), &lwork),
                    "cusolverDnDsyevd_bufferSize");
    Buf<double> work(s, static_cast<size_t>(std::max(lwork, 1)));
    dev.CheckSolver(api.cusolverDnDsyevd(dev.solver(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER, S, g.get(), S,
                                         w.get(), work.get(), lwork, info.get()),
                    "cusolverDnDsyevd");
    int hinfo = 0;
    dev.Download(&hinfo, info.get(), sizeof(int));
    if (hinfo != 0) throw CudaError("svd: cusolverDnDsyevd failed, info=" + std::to_string(hinfo), "error");
  }
  // 3. X = P·V (L×S, float64), then the column norms ‖A v_k‖.
  Buf<double> x(s, LS);
  dev.CheckBlas(api.cublasDgemm(dev.blas(), tall ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, L, S, S, &one, d.get(),
                                tall ? S : L, g.get(), S, &zero, x.get(), L),
                "cublasDgemm (X = P V)");
  d.reset();
  std::vector<double> sumsq(S);
  {
    Buf<double> ns(s, S);
    const double* xp = x.get();
    double* np = ns.get();
    int rows = L, ld = L;
    void* args[] = {&xp, &rows, &ld, &np};
    dev.Launch(kColSumsqF64, static_cast<unsigned>(S), args);
    dev.Download(sumsq.data(), ns.get(), S * sizeof(double));
  }
  // Descending eigen order: column k is eigenvector S-1-k.
  std::vector<double> norms(S);
  for (int k = 0; k < S; ++k) norms[k] = std::sqrt(sumsq[S - 1 - k]);
  const ColumnClasses classes = ClassifyColumns(norms);
  const std::vector<int>& order = classes.order;
  const int head = classes.head, small = classes.small;
  // Q: head columns normalized, small columns raw, null columns pseudo-random starters.
  Buf<double> q(s, LS), vsp(s, SS);
  {
    std::vector<int> idx(head + small);
    std::vector<double> scale(head + small, 1.0);
    for (int c = 0; c < head + small; ++c) {
      idx[c] = S - 1 - order[c];
      if (c < head) scale[c] = 1.0 / norms[order[c]];
    }
    Gather(s, x.get(), L, L, idx, &scale, q.get(), L);
    std::vector<int> seeds(order.begin() + head + small, order.end());
    if (!seeds.empty()) {
      Buf<int> ds(s, seeds.size());
      dev.Upload(ds.get(), seeds.data(), seeds.size() * sizeof(int));
      double* dst = q.get() + static_cast<size_t>(head + small) * L;
      int ld = L, rows = L;
      const int* sp = ds.get();
      void* args[] = {&dst, &ld, &rows, &sp};
      dev.Launch(kFillRandomCols, static_cast<unsigned>(seeds.size()), args);
      dev.Sync();
    }
    std::vector<int> all(S);
    for (int c = 0; c < S; ++c) all[c] = S - 1 - order[c];
    Gather(s, g.get(), S, S, all, nullptr, vsp.get(), S);
  }
  x.reset();
  g.reset();
  std::vector<double> sigma(S, 0.0), sign(S, 1.0);
  for (int c = 0; c < head; ++c) sigma[c] = norms[order[c]];
  // 4. Tail: CGS2 against the head, then Householder QR of the tail alone.
  const int tail = S - head;
  if (tail > 0) {
    double* t = q.get() + static_cast<size_t>(head) * L;
    if (head > 0) {
      Buf<double> c(s, static_cast<size_t>(head) * tail);
      for (int pass = 0; pass < 2; ++pass) {
        dev.CheckBlas(api.cublasDgemm(dev.blas(), CUBLAS_OP_T, CUBLAS_OP_N, head, tail, L, &one, q.get(), L, t, L, &zero,
                                      c.get(), head),
                      "cublasDgemm (C = Qhᵀ T)");
        dev.CheckBlas(api.cublasDgemm(dev.blas(), CUBLAS_OP_N, CUBLAS_OP_N, L, tail, head, &minus, q.get(), L, c.get(),
                                      head, &one, t, L),
                      "cublasDgemm (T −= Qh C)");
      }
    }
    Buf<double> tau(s, tail);
    Buf<int> info(s, 1);
    int lw1 = 0, lw2 = 0;
    dev.CheckSolver(api.cusolverDnDgeqrf_bufferSize(dev.solver(), L, tail, t, L, &lw1), "cusolverDnDgeqrf_bufferSize");
    dev.CheckSolver(api.cusolverDnDorgqr_bufferSize(dev.solver(), L, tail, tail, t, L, tau.get(), &lw2),
                    "cusolverDnDorgqr_bufferSize");
    Buf<double> work(s, static_cast<size_t>(std::max({lw1, lw2, 1})));
    dev.CheckSolver(api.cusolverDnDgeqrf(dev.solver(), L, tail, t, L, tau.get(), work.get(), lw1, info.get()),
                    "cusolverDnDgeqrf");
    int hinfo = 0;
    dev.Download(&hinfo, info.get(), sizeof(int));
    if (hinfo != 0) throw CudaError("svd: cusolverDnDgeqrf failed, info=" + std::to_string(hinfo), "error");
    std::vector<double> rdiag(small);
    if (small > 0) {
      dev.Check(api.cudaMemcpy2DAsync(rdiag.data(), sizeof(double), t, (static_cast<size_t>(L) + 1) * sizeof(double),
                                      sizeof(double), small, cudaMemcpyDeviceToHost, dev.stream()),
                "cudaMemcpy2DAsync (R diagonal)");
      dev.Sync();
    }
    dev.CheckSolver(api.cusolverDnDorgqr(dev.solver(), L, tail, tail, t, L, tau.get(), work.get(), lw2, info.get()),
                    "cusolverDnDorgqr");
    dev.Download(&hinfo, info.get(), sizeof(int));
    if (hinfo != 0) throw CudaError("svd: cusolverDnDorgqr failed, info=" + std::to_string(hinfo), "error");
    for (int k = 0; k < small; ++k) {
      sigma[head + k] = std::fabs(rdiag[k]);
      if (rdiag[k] < 0) sign[head + k] = -1.0;
    }
  }
  // Sort descending by σ (|R_kk| may reorder nearly equal values) while writing float32 U and V.
  std::vector<int> perm(S);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int i, int j) { return sigma[i] > sigma[j]; });
  std::vector<double> signPerm(S);
  DevSvd out;
  out.m = m, out.n = n, out.r = S;
  out.s.resize(S);
  for (int c = 0; c < S; ++c) {
    out.s[c] = sigma[perm[c]];
    signPerm[c] = sign[perm[c]];
  }
  Buf<float> longF(s, LS), shortF(s, SS);
  Gather(s, q.get(), L, L, perm, &signPerm, longF.get(), L);
  q.reset();
  Gather(s, vsp.get(), S, S, perm, nullptr, shortF.get(), S);
  if (tall) {
    out.u = std::move(longF);
    out.v = std::move(shortF);
  } else {
    out.u = std::move(shortF);
    out.v = std::move(longF);
  }
  return out;
}

}  // namespace cmerge::cuda

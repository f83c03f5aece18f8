// The engine's operations on the device (docs/cuda-engine.md). Host arrays are row-major, as
// in the rest of cmerge; a row-major m×n matrix is the column-major n×m matrix cuBLAS sees.
#pragma once
#include <vector>

#include "device.h"

namespace cmerge::cuda {

// Reduced SVD A = U diag(s) Vᵀ kept on the device: u m×r and v n×r column-major float32,
// s descending (float64), r = min(m, n).
struct DevSvd {
  Buf<float> u, v;
  std::vector<double> s;
  int m = 0, n = 0, r = 0;
};

// The CPU engine's Gram-matrix SVD (native/src/linalg/svd.cc, dense form) on the device: float64
// Gram matrix of the short side, dsyevd, X = P·V in float64, classification by ‖X_k‖, the tail
// projected off the head twice and through Householder QR. `a` is the device copy of the
// row-major m×n input (float32); it is freed (reset) once no longer needed.
DevSvd GramSvd(Session& s, Buf<float>& a, int m, int n);

// C = op(A)·op(B) for column-major device matrices (cuBLAS's own convention), FP32 (TF32 when
// the session asks for it).
void Gemm(Session& s, bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c,
          int ldc);

// *out = Σ of the `count` per-block partial sums a grid-stride reduction wrote (dot_f32,
// sub_sumsq_f32), added in block order on the device: the same bits on every run.
void SumPartials(Session& s, const double* partials, int count, double* out);

// Operands arrive on the device already (uploaded by the job's staging, addon.cc); the functions
// below free them (reset) once no longer needed.

// C (m×n) = op(A) op(B): a, b the device copies of row-major host arrays; c row-major host.
void Sgemm(Session& s, Buf<float>& a, Buf<float>& b, float* c, int m, int k, int n, bool ta, bool tb);

// Host SVD of the device copy of a row-major m×n array: u (m×r), v (n×r) row-major, s (r).
void SvdToHost(Session& s, Buf<float>& a, int m, int n, float* u, double* sv, float* v);

// OPCM cleaning with prev's SVD resident: t, the device copy of τ (row-major m×n), is overwritten
// (on the device) with τ − U Q Vᵀ (Q: leading k×k block and the diagonal terms i < rank of UᵀτV;
// singular vectors past `rank`, prev's effective rank, are not removed: docs/methods.md#opcm).
// The caller downloads it. Returns {‖UQVᵀ‖², ‖cleaned‖²}.
std::pair<double, double> OpcmApply(Session& s, const DevSvd& svd, Buf<float>& t, int k, int rank);

struct DopOpts {
  double lr = 1e-4;
  int numSteps = 200;
  bool mgda = true, ema = true;
  double emaBeta = 0.999, alpha = 0.8, svdEpsilon = 0.99999;
  char space = 'b';  // 'b' (uv), 'u', 'v'
  const int32_t* stop = nullptr;  // read before each step (another thread may set it): nonzero ends the loop
};
struct DopOut {
  double lossA = 0, lossB = 0, weightA = 0, weightB = 0;
  int rankA = 0, rankB = 0;
  bool stopped = false;
};
// DOP's optimisation of one tensor (methods/dop-solver arithmetic), all steps on the device; base,
// wa, wb: device copies of the row-major m×n host arrays; out: host.
DopOut DopOptimize(Session& s, Buf<float>& base, Buf<float>& wa, Buf<float>& wb, float* out, int m, int n,
                   const DopOpts& o);

}  // namespace cmerge::cuda

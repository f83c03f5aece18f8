// DOP's Adam loop for one tensor on the CPU (the arithmetic of src/engine/ops/dop-optimize.ts's
// JavaScript loop, docs/methods.md#dop): the projections are formed by the caller; each step is the
// four products of the closed-form gradients plus one fused element-wise pass, with every buffer
// allocated once instead of per step.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cmerge {

// One side of a quadratic form: dense (rows×rows) when not null, else F (rows×k) and G = F·diag(σ²).
struct DopSide {
  bool present = false;
  const float* dense = nullptr;
  const float* f = nullptr;
  const float* g = nullptr;
  int k = 0;
};

struct DopProjection {
  const float* w = nullptr;  // the model this loss pulls towards (m×n)
  DopSide left, right;
};

struct DopLoopOptions {
  int numSteps = 0;
  bool mgda = true, ema = true;
  double emaBeta = 0.999, alpha = 0.8;
  const double* stepSize = nullptr;  // lr / (1 − β1^t), t = 1..numSteps (computed by the caller)
  const double* bc2sqrt = nullptr;   // sqrt(1 − β2^t)
  // Read before each step (another thread may set it): nonzero ends the loop there, `stopped` set.
  const int32_t* stop = nullptr;
};

struct DopLoopResult {
  double lossA = 0, lossB = 0, weightA = 0, weightB = 0;
  bool stopped = false;
};

// w (m×n, row-major) holds the start point and receives the result.
DopLoopResult DopAdamLoop(float* w, const DopProjection& a, const DopProjection& b, int m, int n,
                          const DopLoopOptions& o);

}  // namespace cmerge

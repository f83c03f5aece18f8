// OPCM's cleaning of one tensor after its SVD (the arithmetic of src/engine/ops/opcm-clean.ts,
// docs/methods.md#opcm), with U and V kept in native memory between the SVD and the cleaning
// instead of handed to JavaScript and freed at garbage collection.
#pragma once
#include <cstddef>

namespace cmerge {

struct OpcmSums {
  double removedSq = 0, cleanedSq = 0;
};

// tau (m×n row-major) becomes τ − U Q Vᵀ. u (m×r) is overwritten with W = U Q. k: the leading block,
// rank: the diagonal terms i < rank are removed (0 < rank ≤ r).
OpcmSums OpcmApply(float* tau, float* u, const float* v, int m, int n, int k, int rank);

}  // namespace cmerge

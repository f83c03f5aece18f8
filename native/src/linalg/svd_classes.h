// The column classes of the Gram-matrix SVD, shared by the CPU (linalg/svd.cc) and CUDA
// (cuda/svd.cc) engines so both classify alike: head (σ ≥ kOrthoTol σ_max), small, and null
// (σ ≤ kNullTol σ_max, reported as 0), judged by the direct norms ‖A v_k‖.
#pragma once
#include <algorithm>
#include <numeric>
#include <vector>

#include "svd.h"

namespace cmerge {

struct ColumnClasses {
  std::vector<int> order;  // column indices: head, then small, then null (stable within each)
  int head = 0, small = 0;
};

inline ColumnClasses ClassifyColumns(const std::vector<double>& norms) {
  const int S = static_cast<int>(norms.size());
  double nmax = 0.0;
  for (double x : norms) nmax = std::max(nmax, x);
  // 0 head, 1 small, 2 null (all null when A = 0).
  const auto cls = [&](int k) { return !(norms[k] > kNullTol * nmax) ? 2 : norms[k] >= kOrthoTol * nmax ? 0 : 1; };
  ColumnClasses c;
  c.order.resize(S);
  std::iota(c.order.begin(), c.order.end(), 0);
  std::stable_sort(c.order.begin(), c.order.end(), [&](int i, int j) { return cls(i) < cls(j); });
  for (int k = 0; k < S; ++k) {
    if (cls(k) == 0) ++c.head;
    else if (cls(k) == 1) ++c.small;
  }
  return c;
}

}  // namespace cmerge

// Reduced SVD of a float32 matrix through the float64 Gram matrix of its short side.
#pragma once
#include <string>

namespace cmerge {

// Singular values at or below kNullTol * sigma_max are reported as 0 and their vectors completed
// to an orthonormal set. The input is float32: rounding it alone perturbs singular values by up to
// ~2^-24 * ||A|| (about 6e-8 sigma_max), so anything smaller is not determined by the data.
constexpr double kNullTol = 1e-7;

// Columns with σ ≥ kOrthoTol σ_max lose at most ~c·ε/kOrthoTol² ≈ 2e-8·c of orthogonality through
// the squared condition number (c: dsyevd's backward-error constant), the order of float32 storage
// itself (~1e-8 per inner product), so they skip re-orthogonalization; smaller ones go through QR.
// 1e-3 sent the noise part of task vectors (~40 % of a 768×768 one's columns) through QR for no
// gain: OPCM outputs moved by ≤ 5e-9 relative (docs/performance.md).
constexpr double kOrthoTol = 1e-4;

// A: m×n row-major. Outputs: u m×r, v n×r (row-major), s r descending, r = min(m, n).
// Returns an empty string on success, else a message. May throw std::bad_alloc.
std::string SvdGram(const float* a, int m, int n, float* u, double* s, float* v);

}  // namespace cmerge

// Eigendecomposition of a symmetric float64 matrix (the Gram matrix of the SVD), as dsyevd computes
// it: tridiagonal reduction (dsytrd), divide and conquer on the tridiagonal matrix (dstedc), then
// the back-transformation by Q, here in blocks of plain dgemm products instead of dormtr.
#pragma once
#include <string>
#include <vector>

#include "big_alloc.h"

namespace cmerge {

// a: n×n column-major, lower triangle used. On success a holds the eigenvectors (columns, ascending
// eigenvalue) and w the eigenvalues; returns an empty string, else a message. May throw bad_alloc.
std::string SymmetricEigen(int n, BigVector<double>& a, std::vector<double>& w);

}  // namespace cmerge

// The element-wise and reduction kernels of the CUDA engine (docs/cuda-engine.md). Compiled to
// PTX by gen-kernels.sh (nvcc -ptx, compute_75, --fmad=false) and embedded in the addon as text:
// the driver JIT-compiles it for the GPU at hand, so the addon builds without CUDA.
// --fmad=false: the arithmetic matches the CPU engines' (no fused multiply-add), so DOP's Adam
// update is the same float64 arithmetic as the TypeScript loop.
// Column kernels: one block per column (gridDim.x = columns), threads stride over the rows.
// Reductions accumulate in float64; the grid-stride ones write one partial sum per block, which
// sum_f64 then adds in block order: no atomicAdd, whose order varies from run to run, so a merge
// gives the same bits every time (a replay is checked against the recorded sha256).

#define THREADS 256

__device__ double BlockSum(double v) {
  __shared__ double buf[THREADS];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int s = THREADS / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  return buf[0];
}

// Same values as RandAt in native/src/linalg/svd.cc (splitmix64 of the position).
__device__ double RandAt(unsigned long long col, unsigned long long row) {
  unsigned long long z = ((col << 32) | row) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-52 - 1.0;
}

#define GRID_STRIDE(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

extern "C" {

__global__ void f32_to_f64(const float* src, double* dst, long long n) {
  GRID_STRIDE(i, n) dst[i] = (double)src[i];
}

// out[c] = Σ_r x[r + c·ld]²
__global__ void col_sumsq_f64(const double* x, int rows, int ld, double* out) {
  const double* col = x + (long long)blockIdx.x * ld;
  double s = 0.0;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) s += col[r] * col[r];
  s = BlockSum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// dst column c = src column idx[c], times scale[c] when scale is not null.
__global__ void gather_cols_f64(const double* src, int lds, int rows, const int* idx, const double* scale,
                                double* dst, int ldd) {
  const int c = blockIdx.x;
  const double* s = src + (long long)idx[c] * lds;
  double* d = dst + (long long)c * ldd;
  const double f = scale ? scale[c] : 1.0;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) d[r] = s[r] * f;
}

// As gather_cols_f64, rounded to float32.
__global__ void gather_cols_f64_to_f32(const double* src, int lds, int rows, const int* idx, const double* scale,
                                       float* dst, int ldd) {
  const int c = blockIdx.x;
  const double* s = src + (long long)idx[c] * lds;
  float* d = dst + (long long)c * ldd;
  const double f = scale ? scale[c] : 1.0;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) d[r] = (float)(s[r] * f);
}

// dst column c, row r = RandAt(seed[c], r): starters for the null-space completion.
__global__ void fill_random_cols(double* dst, int ld, int rows, const int* seed) {
  const int c = blockIdx.x;
  double* d = dst + (long long)c * ld;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) d[r] = RandAt((unsigned long long)seed[c], (unsigned long long)r);
}

// out[c] = Σ_r a[r + c·ld]·b[r + c·ld] in float64.
__global__ void col_dot_f32(const float* a, const float* b, int rows, int ld, double* out) {
  const long long off = (long long)blockIdx.x * ld;
  double s = 0.0;
  for (int r = threadIdx.x; r < rows; r += blockDim.x) s += (double)a[off + r] * (double)b[off + r];
  s = BlockSum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = s;
}

// dst column c = src column c · d[c] (· d[c] again when squared), in float64, rounded to float32.
__global__ void scale_cols_f32(const float* src, int lds, int rows, const double* d, int squared, float* dst,
                               int ldd) {
  const int c = blockIdx.x;
  const float* s = src + (long long)c * lds;
  float* o = dst + (long long)c * ldd;
  const double f = d[c];
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    double v = (double)s[r] * f;
    if (squared) v = v * f;
    o[r] = (float)v;
  }
}

// t −= r (float32); per block, partials[block] = Σ r² and partials[gridDim.x + block] = Σ t² over the
// stored results (float64).
__global__ void sub_sumsq_f32(float* t, const float* r, long long n, double* partials) {
  double rs = 0.0, ts = 0.0;
  GRID_STRIDE(i, n) {
    const float x = r[i];
    const float y = t[i] - x;
    t[i] = y;
    rs += (double)x * (double)x;
    ts += (double)y * (double)y;
  }
  rs = BlockSum(rs);
  __syncthreads();
  ts = BlockSum(ts);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = rs;
    partials[gridDim.x + blockIdx.x] = ts;
  }
}

// out = a − b (float32)
__global__ void diff_f32(const float* a, const float* b, float* out, long long n) {
  GRID_STRIDE(i, n) out[i] = a[i] - b[i];
}

// out = (a + b) / 2, in float64, rounded to float32
__global__ void mean2_f32(const float* a, const float* b, float* out, long long n) {
  GRID_STRIDE(i, n) out[i] = (float)(((double)a[i] + (double)b[i]) / 2.0);
}

// g = 2x, or g += 2x when accumulate (float32 results)
__global__ void grad_acc_f32(float* g, const float* x, int accumulate, long long n) {
  GRID_STRIDE(i, n) g[i] = accumulate ? (float)((double)g[i] + 2.0 * (double)x[i]) : (float)(2.0 * (double)x[i]);
}

// partials[block] = the block's share of Σ a·b, in float64
__global__ void dot_f32(const float* a, const float* b, long long n, double* partials) {
  double s = 0.0;
  GRID_STRIDE(i, n) s += (double)a[i] * (double)b[i];
  s = BlockSum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// *out = Σ x[0..count) in a fixed order (one block): thread t adds x[t], x[t + 256], ..., then the tree.
__global__ void sum_f64(const double* x, int count, double* out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += x[i];
  s = BlockSum(s);
  if (threadIdx.x == 0) *out = s;
}

// One Adam step (torch.optim.Adam, no weight decay) on g = wa·ga + wb·gb, in float64 as the
// TypeScript loop does (m and v stored as float32, the update uses the unrounded values).
__global__ void adam_f32(float* w, float* m, float* v, const float* ga, const float* gb, double wa, double wb,
                         double beta1, double beta2, double stepSize, double bc2sqrt, double eps, long long n) {
  GRID_STRIDE(i, n) {
    const double g = wa * (double)ga[i] + wb * (double)gb[i];
    const double mi = beta1 * (double)m[i] + (1.0 - beta1) * g;
    const double vi = beta2 * (double)v[i] + (1.0 - beta2) * g * g;
    m[i] = (float)mi;
    v[i] = (float)vi;
    w[i] = (float)((double)w[i] - (stepSize * mi) / (sqrt(vi) / bc2sqrt + eps));
  }
}

}  // extern "C"

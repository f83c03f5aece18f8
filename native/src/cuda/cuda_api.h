// The CUDA entry points cmerge_cuda uses, declared here so the addon builds without the CUDA
// toolkit: libcudart, libcublas, libcusolver and the driver (libcuda) are opened with dlopen at
// run time (docs/cuda-engine.md). Only what the engine calls is declared; the values of the
// enums below are those of the CUDA 12/13 headers (they are part of the stable ABI).
#pragma once
#include <cstddef>
#include <string>

namespace cmerge::cuda {

// --- runtime (libcudart) -------------------------------------------------------------------
using cudaError_t = int;
using cudaStream_t = struct CUstream_st*;
using cudaEvent_t = struct CUevent_st*;
constexpr cudaError_t cudaSuccess = 0;
constexpr cudaError_t cudaErrorMemoryAllocation = 2;
constexpr int cudaMemcpyHostToDevice = 1;
constexpr int cudaMemcpyDeviceToHost = 2;
constexpr int cudaMemcpyDeviceToDevice = 3;
constexpr unsigned cudaHostAllocDefault = 0;
constexpr unsigned cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0;
constexpr unsigned cudaEventDisableTiming = 2;
constexpr unsigned cudaDeviceScheduleBlockingSync = 4;

// --- driver (libcuda.so.1): contexts and our kernels ----------------------------------------
using CUresult = int;
using CUdevice = int;
using CUcontext = struct CUctx_st*;
using CUmodule = struct CUmod_st*;
using CUfunction = struct CUfunc_st*;
constexpr CUresult CUDA_SUCCESS = 0;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;

// --- cuBLAS (v2 API; column-major) ----------------------------------------------------------
using cublasHandle_t = struct cublasContext*;
using cublasStatus_t = int;
constexpr cublasStatus_t CUBLAS_STATUS_SUCCESS = 0;
constexpr int CUBLAS_OP_N = 0;
constexpr int CUBLAS_OP_T = 1;
constexpr int CUBLAS_FILL_MODE_LOWER = 0;
constexpr int CUBLAS_FILL_MODE_UPPER = 1;
constexpr int CUBLAS_DEFAULT_MATH = 0;
constexpr int CUBLAS_PEDANTIC_MATH = 2;
constexpr int CUBLAS_TF32_TENSOR_OP_MATH = 3;

// --- cuSOLVER (dense) -----------------------------------------------------------------------
using cusolverDnHandle_t = struct cusolverDnContext*;
using cusolverStatus_t = int;
constexpr cusolverStatus_t CUSOLVER_STATUS_SUCCESS = 0;
constexpr int CUSOLVER_EIG_MODE_VECTOR = 1;

// One table of function pointers, filled by Load(). Names are the exported symbols (cuBLAS's
// v2 entry points end in _v2).
struct Api {
  // libcudart
  cudaError_t (*cudaGetDeviceCount)(int*);
  cudaError_t (*cudaSetDevice)(int);
  cudaError_t (*cudaSetDeviceFlags)(unsigned);
  cudaError_t (*cudaRuntimeGetVersion)(int*);
  cudaError_t (*cudaDriverGetVersion)(int*);
  cudaError_t (*cudaMalloc)(void**, size_t);
  cudaError_t (*cudaFree)(void*);
  cudaError_t (*cudaHostAlloc)(void**, size_t, unsigned);
  cudaError_t (*cudaFreeHost)(void*);
  cudaError_t (*cudaMemcpyAsync)(void*, const void*, size_t, int, cudaStream_t);
  cudaError_t (*cudaMemcpy2DAsync)(void*, size_t, const void*, size_t, size_t, size_t, int, cudaStream_t);
  cudaError_t (*cudaMemsetAsync)(void*, int, size_t, cudaStream_t);
  cudaError_t (*cudaMemGetInfo)(size_t*, size_t*);
  cudaError_t (*cudaStreamCreateWithFlags)(cudaStream_t*, unsigned);
  cudaError_t (*cudaStreamDestroy)(cudaStream_t);
  cudaError_t (*cudaStreamSynchronize)(cudaStream_t);
  cudaError_t (*cudaStreamWaitEvent)(cudaStream_t, cudaEvent_t, unsigned);
  cudaError_t (*cudaEventCreateWithFlags)(cudaEvent_t*, unsigned);
  cudaError_t (*cudaEventDestroy)(cudaEvent_t);
  cudaError_t (*cudaEventRecord)(cudaEvent_t, cudaStream_t);
  cudaError_t (*cudaEventSynchronize)(cudaEvent_t);
  cudaError_t (*cudaEventElapsedTime)(float*, cudaEvent_t, cudaEvent_t);
  cudaError_t (*cudaGetLastError)();
  const char* (*cudaGetErrorString)(cudaError_t);
  const char* (*cudaGetErrorName)(cudaError_t);

  // libcuda (driver)
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGet)(CUdevice*, int);
  CUresult (*cuDeviceGetName)(char*, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int*, int, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t*, CUdevice);  // symbol cuDeviceTotalMem_v2
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);  // symbol cuDevicePrimaryCtxRelease_v2
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuModuleLoadData)(CUmodule*, const void*);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction*, CUmodule, const char*);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             cudaStream_t, void**, void**);
  CUresult (*cuGetErrorString)(CUresult, const char**);

  // libcublas
  cublasStatus_t (*cublasCreate)(cublasHandle_t*);    // cublasCreate_v2
  cublasStatus_t (*cublasDestroy)(cublasHandle_t);    // cublasDestroy_v2
  cublasStatus_t (*cublasGetVersion)(cublasHandle_t, int*);  // cublasGetVersion_v2
  cublasStatus_t (*cublasSetStream)(cublasHandle_t, cudaStream_t);  // cublasSetStream_v2
  cublasStatus_t (*cublasSetMathMode)(cublasHandle_t, int);
  cublasStatus_t (*cublasSgemm)(cublasHandle_t, int, int, int, int, int, const float*, const float*, int,
                                const float*, int, const float*, float*, int);  // cublasSgemm_v2
  cublasStatus_t (*cublasDgemm)(cublasHandle_t, int, int, int, int, int, const double*, const double*, int,
                                const double*, int, const double*, double*, int);  // cublasDgemm_v2
  cublasStatus_t (*cublasDsyrk)(cublasHandle_t, int, int, int, int, const double*, const double*, int,
                                const double*, double*, int);  // cublasDsyrk_v2

  // libcusolver
  cusolverStatus_t (*cusolverDnCreate)(cusolverDnHandle_t*);
  cusolverStatus_t (*cusolverDnDestroy)(cusolverDnHandle_t);
  cusolverStatus_t (*cusolverDnSetStream)(cusolverDnHandle_t, cudaStream_t);
  cusolverStatus_t (*cusolverGetVersion)(int*);
  cusolverStatus_t (*cusolverDnDsyevd_bufferSize)(cusolverDnHandle_t, int, int, int, const double*, int,
                                                  const double*, int*);
  cusolverStatus_t (*cusolverDnDsyevd)(cusolverDnHandle_t, int, int, int, double*, int, double*, double*, int, int*);
  cusolverStatus_t (*cusolverDnDgeqrf_bufferSize)(cusolverDnHandle_t, int, int, double*, int, int*);
  cusolverStatus_t (*cusolverDnDgeqrf)(cusolverDnHandle_t, int, int, double*, int, double*, double*, int, int*);
  cusolverStatus_t (*cusolverDnDorgqr_bufferSize)(cusolverDnHandle_t, int, int, int, const double*, int,
                                                  const double*, int*);
  cusolverStatus_t (*cusolverDnDorgqr)(cusolverDnHandle_t, int, int, int, double*, int, const double*, double*, int,
                                       int*);

  // which files were opened (for the engine line and the version record)
  std::string cudartPath, cublasPath, cusolverPath, driverPath;
};

// Opens the libraries (once per process) and resolves every entry point. On failure returns
// nullptr and sets *why to one line naming what is missing (library and sonames tried, or symbol).
// CMERGE_CUDA_LIB_DIR adds a directory to search first; CMERGE_CUDA_LIBS=<file> takes every
// symbol from that one library (the CPU stand-in used by the tests, test/native/fake-cuda).
const Api* Load(std::string* why);

}  // namespace cmerge::cuda

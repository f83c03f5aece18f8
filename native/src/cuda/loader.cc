// Opens the CUDA libraries with dlopen and resolves the entry points of cuda_api.h. Nothing here
// needs CUDA at build time; on a machine without it Load() returns nullptr and one line saying
// which library (and which sonames) could not be found.
#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_api.h"

namespace cmerge::cuda {
namespace {

// Where a CUDA toolkit or the pip wheels usually put the libraries, tried after the loader's
// own search (LD_LIBRARY_PATH, ld.so.cache), which is where distributions install them.
const char* const kDirs[] = {"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
                             "/usr/lib/x86_64-linux-gnu"};

struct Opened {
  void* handle = nullptr;
  std::string path;
};

std::string Dirname(const std::string& p) {
  const auto i = p.rfind('/');
  return i == std::string::npos ? std::string() : p.substr(0, i);
}

// dlopen of the first soname that opens, in CMERGE_CUDA_LIB_DIR, then the default search, then kDirs.
Opened OpenFirst(const std::vector<std::string>& sonames, std::string* tried) {
  std::vector<std::string> dirs;
  if (const char* d = std::getenv("CMERGE_CUDA_LIB_DIR"); d && *d) dirs.emplace_back(d);
  dirs.emplace_back("");
  for (const char* d : kDirs) dirs.emplace_back(d);
  for (const auto& dir : dirs) {
    for (const auto& so : sonames) {
      const std::string path = dir.empty() ? so : dir + "/" + so;
      if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
        std::string where = path;
        // the file the loader picked for this handle (not dladdr of a symbol: dlsym also searches
        // the library's dependencies, so cuSOLVER's would name the cuBLAS it links)
        link_map* lm = nullptr;
        if (dir.empty() && dlinfo(h, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && *lm->l_name) where = lm->l_name;
        return {h, where};
      }
    }
  }
  *tried = "";
  for (size_t i = 0; i < sonames.size(); ++i) *tried += (i ? ", " : "") + sonames[i];
  return {};
}

template <typename F>
bool Sym(void* h, F*& out, const char* name, std::string* missing) {
  out = reinterpret_cast<F*>(dlsym(h, name));
  if (!out && missing->empty()) *missing = name;
  return out != nullptr;
}

Api* LoadOnce(std::string* why) {
  static Api api;
  const char* single = std::getenv("CMERGE_CUDA_LIBS");
  Opened rt, drv, blas, sol;
  std::string tried;
  if (single && *single) {
    // one library that exports every symbol (the tests' CPU stand-in)
    void* h = dlopen(single, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      *why = std::string("CMERGE_CUDA_LIBS=") + single + " does not open: " + dlerror();
      return nullptr;
    }
    rt = drv = blas = sol = Opened{h, single};
  } else {
    drv = OpenFirst({"libcuda.so.1"}, &tried);
    if (!drv.handle) {
      *why = "no NVIDIA driver: libcuda.so.1 not found";
      return nullptr;
    }
    rt = OpenFirst({"libcudart.so.13", "libcudart.so.12"}, &tried);
    if (!rt.handle) {
      *why = "CUDA runtime not found (tried " + tried + "; set CMERGE_CUDA_LIB_DIR or LD_LIBRARY_PATH)";
      return nullptr;
    }
    // cuBLAS and cuSOLVER of the runtime's major version first (CUDA 13: cusolver .so.12; 12: .so.11)
    const bool v13 = rt.path.find(".so.13") != std::string::npos;
    const std::string rtDir = Dirname(rt.path);
    auto withDir = [&](std::vector<std::string> names) {
      std::vector<std::string> out;
      if (!rtDir.empty())
        for (const auto& n : names) out.push_back(rtDir + "/" + n);
      for (const auto& n : names) out.push_back(n);
      return out;
    };
    blas = OpenFirst(withDir(v13 ? std::vector<std::string>{"libcublas.so.13", "libcublas.so.12"}
                                 : std::vector<std::string>{"libcublas.so.12", "libcublas.so.13"}),
                     &tried);
    if (!blas.handle) {
      *why = "cuBLAS not found (tried " + tried + ")";
      return nullptr;
    }
    sol = OpenFirst(withDir(v13 ? std::vector<std::string>{"libcusolver.so.12", "libcusolver.so.11"}
                                : std::vector<std::string>{"libcusolver.so.11", "libcusolver.so.12"}),
                    &tried);
    if (!sol.handle) {
      *why = "cuSOLVER not found (tried " + tried + ")";
      return nullptr;
    }
  }
  std::string missing;
  void* r = rt.handle;
  Sym(r, api.cudaGetDeviceCount, "cudaGetDeviceCount", &missing);
  Sym(r, api.cudaSetDevice, "cudaSetDevice", &missing);
  Sym(r, api.cudaSetDeviceFlags, "cudaSetDeviceFlags", &missing);
  Sym(r, api.cudaRuntimeGetVersion, "cudaRuntimeGetVersion", &missing);
  Sym(r, api.cudaDriverGetVersion, "cudaDriverGetVersion", &missing);
  Sym(r, api.cudaMalloc, "cudaMalloc", &missing);
  Sym(r, api.cudaFree, "cudaFree", &missing);
  Sym(r, api.cudaHostAlloc, "cudaHostAlloc", &missing);
  Sym(r, api.cudaFreeHost, "cudaFreeHost", &missing);
  Sym(r, api.cudaMemcpyAsync, "cudaMemcpyAsync", &missing);
  Sym(r, api.cudaMemcpy2DAsync, "cudaMemcpy2DAsync", &missing);
  Sym(r, api.cudaMemsetAsync, "cudaMemsetAsync", &missing);
  Sym(r, api.cudaMemGetInfo, "cudaMemGetInfo", &missing);
  Sym(r, api.cudaStreamCreateWithFlags, "cudaStreamCreateWithFlags", &missing);
  Sym(r, api.cudaStreamDestroy, "cudaStreamDestroy", &missing);
  Sym(r, api.cudaStreamSynchronize, "cudaStreamSynchronize", &missing);
  Sym(r, api.cudaStreamWaitEvent, "cudaStreamWaitEvent", &missing);
  Sym(r, api.cudaEventCreateWithFlags, "cudaEventCreateWithFlags", &missing);
  Sym(r, api.cudaEventDestroy, "cudaEventDestroy", &missing);
  Sym(r, api.cudaEventRecord, "cudaEventRecord", &missing);
  Sym(r, api.cudaEventSynchronize, "cudaEventSynchronize", &missing);
  Sym(r, api.cudaEventElapsedTime, "cudaEventElapsedTime", &missing);
  Sym(r, api.cudaGetLastError, "cudaGetLastError", &missing);
  Sym(r, api.cudaGetErrorString, "cudaGetErrorString", &missing);
  Sym(r, api.cudaGetErrorName, "cudaGetErrorName", &missing);
  void* d = drv.handle;
  Sym(d, api.cuInit, "cuInit", &missing);
  Sym(d, api.cuDeviceGet, "cuDeviceGet", &missing);
  Sym(d, api.cuDeviceGetName, "cuDeviceGetName", &missing);
  Sym(d, api.cuDeviceGetAttribute, "cuDeviceGetAttribute", &missing);
  Sym(d, api.cuDeviceTotalMem, "cuDeviceTotalMem_v2", &missing);
  Sym(d, api.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", &missing);
  Sym(d, api.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", &missing);
  Sym(d, api.cuCtxSetCurrent, "cuCtxSetCurrent", &missing);
  Sym(d, api.cuModuleLoadData, "cuModuleLoadData", &missing);
  Sym(d, api.cuModuleUnload, "cuModuleUnload", &missing);
  Sym(d, api.cuModuleGetFunction, "cuModuleGetFunction", &missing);
  Sym(d, api.cuLaunchKernel, "cuLaunchKernel", &missing);
  Sym(d, api.cuGetErrorString, "cuGetErrorString", &missing);
  void* b = blas.handle;
  Sym(b, api.cublasCreate, "cublasCreate_v2", &missing);
  Sym(b, api.cublasDestroy, "cublasDestroy_v2", &missing);
  Sym(b, api.cublasGetVersion, "cublasGetVersion_v2", &missing);
  Sym(b, api.cublasSetStream, "cublasSetStream_v2", &missing);
  Sym(b, api.cublasSetMathMode, "cublasSetMathMode", &missing);
  Sym(b, api.cublasSgemm, "cublasSgemm_v2", &missing);
  Sym(b, api.cublasDgemm, "cublasDgemm_v2", &missing);
  Sym(b, api.cublasDsyrk, "cublasDsyrk_v2", &missing);
  void* s = sol.handle;
  Sym(s, api.cusolverDnCreate, "cusolverDnCreate", &missing);
  Sym(s, api.cusolverDnDestroy, "cusolverDnDestroy", &missing);
  Sym(s, api.cusolverDnSetStream, "cusolverDnSetStream", &missing);
  Sym(s, api.cusolverGetVersion, "cusolverGetVersion", &missing);
  Sym(s, api.cusolverDnDsyevd_bufferSize, "cusolverDnDsyevd_bufferSize", &missing);
  Sym(s, api.cusolverDnDsyevd, "cusolverDnDsyevd", &missing);
  Sym(s, api.cusolverDnDgeqrf_bufferSize, "cusolverDnDgeqrf_bufferSize", &missing);
  Sym(s, api.cusolverDnDgeqrf, "cusolverDnDgeqrf", &missing);
  Sym(s, api.cusolverDnDorgqr_bufferSize, "cusolverDnDorgqr_bufferSize", &missing);
  Sym(s, api.cusolverDnDorgqr, "cusolverDnDorgqr", &missing);
  if (!missing.empty()) {
    *why = "symbol " + missing + " not found in the CUDA libraries (" + rt.path + ", " + blas.path + ", " +
           sol.path + ", " + drv.path + ")";
    return nullptr;
  }
  api.cudartPath = rt.path;
  api.cublasPath = blas.path;
  api.cusolverPath = sol.path;
  api.driverPath = drv.path;
  return &api;
}

}  // namespace

const Api* Load(std::string* why) {
  static std::once_flag once;
  static const Api* api = nullptr;
  static std::string error;
  std::call_once(once, [] { api = LoadOnce(&error); });
  if (!api) *why = error;
  return api;
}

}  // namespace cmerge::cuda

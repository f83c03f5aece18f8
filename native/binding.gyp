{
  # Two addons so the one without BLAS still builds where OpenBLAS/LAPACKE are missing.
  # blas_libs is overridable (native/build.mjs passes CMERGE_BLAS_LIBS) to build against another
  # BLAS, or to exercise the missing-library path.
  "variables": {
    "blas_libs%": "-lopenblas -llapacke"
  },
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    # No FMA contraction and no errno from sqrt: the native loops give the JavaScript forms' bits
    # (test/engine/*-native.test.ts) even where a function is built for wider vectors.
    "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-ffp-contract=off", "-fno-math-errno"]
  },
  "targets": [
    {
      "target_name": "cmerge_linalg",
      "sources": ["src/linalg/addon.cc", "src/linalg/svd.cc", "src/linalg/sym_eigen.cc", "src/linalg/dop.cc", "src/linalg/opcm.cc", "src/linalg/big_alloc.cc"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu"],
      "libraries": ["<@(blas_libs)"]
    },
    {
      # Needs no CUDA to build: the libraries are opened with dlopen at run time (docs/cuda-engine.md).
      "target_name": "cmerge_cuda",
      "sources": ["src/cuda/addon.cc", "src/cuda/loader.cc", "src/cuda/device.cc", "src/cuda/svd.cc", "src/cuda/ops.cc", "src/cuda/dop.cc"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "cmerge_sys",
      "sources": ["src/sys/sd_notify.cc"]
    }
  ]
}

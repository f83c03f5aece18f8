#!/usr/bin/env bash
# The GPU checks of issue 16, as one prepared run on the lent machine (one NVIDIA H200, CUDA 13,
# python3 with PyTorch+CUDA; no Node, no network). Staged by bench/gpu/prepare.sh; see
# bench/README.md ("GPU bench"). Run from the repository root:   bash bench/gpu/run.sh
#
# Stages, cheap and most important first, each under its own timeout inside one overall budget
# (GPU_BUDGET_S, default 450 s): a stage that fails is logged and the next one runs.
#   setup         node and node_modules unpacked, CUDA libraries found, diagnostics
#   fixtures      test/fixtures/parity from .gpu/fixtures.tar.xz (or remade with gen_fixtures.py)
#   engine-tests  the engine tests on the real GPU, cuda engine only (CMERGE_TEST_REAL_CUDA=1
#                 CMERGE_TEST_ENGINES=cuda: the machine has no OpenBLAS)
#   parity        every fixture, method and step with --engine cuda (CMERGE_PARITY_ENGINES=cuda)
#   opcm-vitb32, dop-vitb32-l2, opcm-llama1b, opcm-llama7b-l2, peer-llama1b,
#   opcm-llama1b-serial, opcm-llama7b-l4
#                 dist/bench/gpu/bench.js (the last two only with time to spare)
# Output under $OUT (else bench/results/): log.txt (everything), tests.txt (test runner output),
# gpu-*.md and gpu-summary.json (the figures). At most 8 files. GPU_STAGES="parity opcm-vitb32"
# runs only the stages named (setup always runs). GPU_STAGE_SCALE=N multiplies every stage's
# timeout (with GPU_BUDGET_S: a dry run against the CPU stand-in, which is slow, runs each stage
# to its end).
set -u

ROOT=$(pwd)
[ -f "$ROOT/package.json" ] && [ -f "$ROOT/bench/gpu/run.sh" ] || { echo "run.sh: run it from the repository root" >&2; exit 2; }
OUT=${OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
LOG=$OUT/log.txt
TESTS=$OUT/tests.txt
BUDGET=${GPU_BUDGET_S:-450}
START=$(date +%s)
GPU=$ROOT/.gpu
NODE_DIR=/tmp/cmerge-node/bin
export GPU_WORK=${GPU_WORK:-/tmp/cmerge-gpu}
export GPU_OUT=$OUT
export CMERGE_REFERENCE=$GPU/reference
export CMERGE_PYTHON=${CMERGE_PYTHON:-python3}
export CMERGE_PARITY_CONCURRENCY=${CMERGE_PARITY_CONCURRENCY:-8}
# the tests' CPU stand-in of the CUDA libraries is not used here; GPU_SIM_CUDA_LIBS=<its .so>
# (with CMERGE_PYTHON=/usr/bin/python3 BENCH_PEER_DEVICE=cpu) tries this script on a machine
# without a GPU
unset CMERGE_CUDA_LIBS
[ -n "${GPU_SIM_CUDA_LIBS:-}" ] && export CMERGE_CUDA_LIBS=$GPU_SIM_CUDA_LIBS
FAILED=()

elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((START + BUDGET - $(date +%s))); }

# unxz FILE > stdout, with xz or with python's lzma
unxz_to() {
  if command -v xz >/dev/null; then xz -dc "$1"; else "$CMERGE_PYTHON" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer, 1 << 20)' "$1"; fi
}
# untar_xz ARCHIVE DIR
untar_xz() { unxz_to "$1" | tar -C "$2" -xf -; }

# stage NAME MAX_SECONDS CMD...: runs CMD under timeout min(MAX, time left); never fails the script.
# GPU_STAGES="a b ...": run only these stages (setup always runs).
stage() {
  local name=$1 max=$(($2 * ${GPU_STAGE_SCALE:-1}))
  shift 2
  local l t s rc
  if [ -n "${GPU_STAGES:-}" ] && [[ " $GPU_STAGES " != *" $name "* ]]; then
    echo "=== $name: not selected (GPU_STAGES)"
    return 0
  fi
  l=$(left)
  t=$max
  [ "$l" -lt "$t" ] && t=$l
  if [ "$t" -lt 15 ]; then
    echo "=== $name: SKIPPED at $(elapsed) s (only ${l} s of the budget left)"
    FAILED+=("$name:skipped")
    return 0
  fi
  echo
  echo "=== $name: start at $(elapsed) s, timeout ${t} s"
  s=$(date +%s)
  # the bench stops its own runs 10 s before the stage's timeout, so it can write what it measured
  BENCH_DEADLINE_MS=$(((s + t - 10) * 1000)) timeout -k 10 "$t" "$@"
  rc=$?
  echo "=== $name: exit $rc after $(($(date +%s) - s)) s$([ "$rc" = 124 ] && echo ' (TIMED OUT)')"
  [ "$rc" = 0 ] || FAILED+=("$name:$rc")
  return 0
}

setup() {
  echo "=== setup: $(date -u +%FT%TZ) in $ROOT, budget ${BUDGET} s"
  cat "$GPU/MANIFEST" 2>/dev/null
  # node
  mkdir -p "$NODE_DIR"
  if [ -f "$GPU/node.xz" ]; then
    timeout 60 bash -c "$(declare -f unxz_to); CMERGE_PYTHON=$CMERGE_PYTHON unxz_to '$GPU/node.xz' > '$NODE_DIR/node'" && chmod +x "$NODE_DIR/node" || echo "setup: node NOT unpacked"
  else
    echo "setup: $GPU/node.xz missing (prepare.sh not run?)"
  fi
  export PATH=$NODE_DIR:$PATH
  echo "node: $(command -v node) $(node -v 2>&1)"
  # node_modules (ignored, so absent on the device; one that is there, e.g. a dry run in a
  # checkout, is kept)
  if [ -d node_modules ]; then
    echo "node_modules: present, kept"
  elif [ -f "$GPU/node_modules.tar.xz" ]; then
    timeout 60 bash -c "$(declare -f unxz_to untar_xz); CMERGE_PYTHON=$CMERGE_PYTHON untar_xz '$GPU/node_modules.tar.xz' '$ROOT'" || echo "setup: node_modules NOT unpacked"
  fi
  echo "node_modules: $(ls node_modules 2>/dev/null | wc -l) entries"
  # CUDA libraries: the toolkit's, then the pip wheels' (nvidia/*/lib), on LD_LIBRARY_PATH
  local dirs=() d site
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/targets/x86_64-linux/lib; do
    [ -d "$d" ] && dirs+=("$d")
  done
  site=$("$CMERGE_PYTHON" -c 'import site; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null
    "$CMERGE_PYTHON" -c 'import os, nvidia; print("\n".join(os.path.dirname(p) for p in nvidia.__path__))' 2>/dev/null)
  while IFS= read -r d; do
    [ -n "$d" ] && [ -d "$d/nvidia" ] || continue
    for lib in "$d"/nvidia/*/lib "$d"/nvidia/*/*/lib; do [ -d "$lib" ] && dirs+=("$lib"); done
  done <<<"$site"
  local ld=""
  for d in "${dirs[@]}"; do
    d=$(readlink -f "$d")
    ls "$d"/libcu*.so* >/dev/null 2>&1 || ls "$d"/libnv*.so* >/dev/null 2>&1 || continue
    case ":$ld:" in *":$d:"*) ;; *) ld=${ld:+$ld:}$d ;; esac
  done
  # for cmerge (node) only: PyTorch finds its own wheels' libraries, and a toolkit library of
  # another minor version first on LD_LIBRARY_PATH could break it, so python runs get the
  # original value (bench.js passes GPU_PY_LD_LIBRARY_PATH to its python children)
  export GPU_PY_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
  export LD_LIBRARY_PATH=${ld}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH (python: '${GPU_PY_LD_LIBRARY_PATH}')"
  local so found
  for so in libcuda.so.1 libcudart.so.13 libcudart.so.12 libcublas.so.13 libcublas.so.12 libcublasLt.so.13 libcublasLt.so.12 libcusolver.so.12 libcusolver.so.11; do
    found=""
    for d in ${LD_LIBRARY_PATH//:/ } /usr/lib/x86_64-linux-gnu /usr/lib64 /lib/x86_64-linux-gnu; do
      [ -e "$d/$so" ] && { found="$d/$so -> $(readlink -f "$d/$so")"; break; }
    done
    [ -z "$found" ] && found=$(ldconfig -p 2>/dev/null | awk -v s="$so" '$1 == s {print $NF; exit}')
    echo "  $so: ${found:-not found}"
  done
  echo "--- nvidia-smi"
  timeout 20 nvidia-smi 2>&1 | head -20
  timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap --format=csv 2>&1
  echo "--- nvcc: $( (command -v nvcc || echo /usr/local/cuda/bin/nvcc) | xargs -I{} sh -c '{} --version 2>/dev/null | tail -2 | tr "\n" " "')"
  echo "--- python: $(LD_LIBRARY_PATH=$GPU_PY_LD_LIBRARY_PATH "$CMERGE_PYTHON" -c 'import sys, torch; print(sys.executable, torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
  echo "--- ldd native/build/Release/cmerge_cuda.node"
  ldd native/build/Release/cmerge_cuda.node 2>&1
  for f in native/build/Release/*.node node_modules/better-sqlite3/build/Release/better_sqlite3.node; do
    [ -e "$f" ] && ldd "$f" 2>&1 | grep -q 'not found' && echo "  $f: missing libraries: $(ldd "$f" 2>&1 | grep 'not found' | tr -s ' \t' ' ' | tr '\n' ';')"
  done
  echo "--- the cuda engine's probe"
  timeout 60 node --input-type=module -e "
    const { probeCuda } = await import('./dist/src/engine/cuda.js');
    const p = probeCuda(0); delete p.addon; console.log(JSON.stringify(p));" 2>&1 | tail -5
  echo "--- disk and memory"
  df -h "$ROOT" /tmp 2>&1 | sed 1d
  free -g 2>&1 | sed -n 2p
  echo "=== setup: done at $(elapsed) s"
}

fixtures() {
  local dest=test/fixtures/parity
  if ls "$dest"/*/manifest.json >/dev/null 2>&1; then
    echo "fixtures: $dest is in the tree already"
  elif [ -f "$GPU/fixtures.tar.xz" ]; then
    mkdir -p test/fixtures
    timeout 60 bash -c "$(declare -f unxz_to untar_xz); CMERGE_PYTHON=$CMERGE_PYTHON untar_xz '$GPU/fixtures.tar.xz' test/fixtures" && echo "fixtures: unpacked from .gpu/fixtures.tar.xz" || echo "fixtures: unpacking FAILED"
  else
    # remade as they were made: gen_fixtures.py OUT SEED ARCH HIDDEN LAYERS TASKS DTYPE (seeds and
    # sizes from each manifest.json and test/fixtures/parity/README.md). With Debian's PyTorch and
    # OpenBLAS the files come out byte-identical when OpenBLAS uses the kernels they were made
    # with: Haswell for the two shared cases, the CPU's own (AVX-512) for the two added ones;
    # another BLAS (the pip wheel's) differs in the last bits, and the check below says so.
    echo "fixtures: remaking with $CMERGE_REFERENCE/gen_fixtures.py"
    mkdir -p "$dest"
    local spec pids=()
    for spec in "clip-f32 Haswell 11 clip 32 2 4 F32" "llama-bf16 Haswell 12 llama 32 2 4 BF16" "clip-f32-d48-seed7 - 7 clip 48 1 5 F32" "llama-bf16-d40-seed11 - 11 llama 40 3 3 BF16"; do
      set -- $spec
      local name=$1 core=$2
      shift 2
      (
        cd "$CMERGE_REFERENCE" || exit 1
        if [ "$core" = - ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE=$core; fi
        LD_LIBRARY_PATH=${GPU_PY_LD_LIBRARY_PATH:-} OMP_NUM_THREADS=4 timeout 150 "$CMERGE_PYTHON" gen_fixtures.py "$ROOT/$dest/$name" "$@" >/dev/null 2>"$GPU_WORK/gen-$name.err" || { echo "fixtures: $name FAILED"; tail -5 "$GPU_WORK/gen-$name.err"; }
      ) &
      pids+=($!)
    done
    wait "${pids[@]}"
  fi
  if [ -f "$GPU/fixtures.sha256" ]; then
    local total same
    total=$(wc -l <"$GPU/fixtures.sha256")
    same=$( (cd test/fixtures && sha256sum -c "$GPU/fixtures.sha256" 2>/dev/null) | grep -c ': OK$')
    echo "fixtures: $same of $total files byte-identical to the tracked ones"
    [ "$same" = "$total" ] || (cd test/fixtures && sha256sum -c "$GPU/fixtures.sha256" 2>/dev/null | grep -v ': OK$' | head -10)
  fi
  ls test/fixtures/parity
}

main() {
  mkdir -p "$GPU_WORK"
  setup
  stage fixtures 180 bash -c "$(declare -f unxz_to untar_xz fixtures); ROOT='$ROOT' GPU='$GPU'; fixtures"

  {
    echo "=== engine tests (real GPU)"
  } >>"$TESTS"
  stage engine-tests 150 bash -c "CMERGE_TEST_REAL_CUDA=1 CMERGE_TEST_ENGINES=cuda node --test --test-reporter=spec dist/test/engine/matmul.test.js dist/test/engine/svd.test.js dist/test/engine/cuda-device.test.js dist/test/methods/opcm.test.js >>'$TESTS' 2>&1; rc=\$?; tail -12 '$TESTS'; exit \$rc"
  echo "=== parity, --engine cuda, CMERGE_PARITY_CONCURRENCY=$CMERGE_PARITY_CONCURRENCY" >>"$TESTS"
  stage parity 200 bash -c "CMERGE_TEST_REAL_CUDA=1 CMERGE_PARITY_ENGINES=cuda node --test --test-reporter=spec dist/test/cli/merge-parity.test.js >>'$TESTS' 2>&1; rc=\$?; grep -E '^(✖|ℹ)|✖' '$TESTS' | tail -40; exit \$rc"

  stage opcm-vitb32 150 node dist/bench/gpu/bench.js opcm-vitb32
  stage dop-vitb32-l2 75 node dist/bench/gpu/bench.js dop-vitb32-l2
  stage opcm-llama1b 120 node dist/bench/gpu/bench.js opcm-llama1b
  stage opcm-llama7b-l2 100 node dist/bench/gpu/bench.js opcm-llama7b-l2
  stage peer-llama1b 150 node dist/bench/gpu/bench.js peer-llama1b
  if [ "$(left)" -ge 60 ] || [ -n "${GPU_STAGES:-}" ]; then
    stage opcm-llama1b-serial 60 node dist/bench/gpu/bench.js opcm-llama1b-serial
  else
    echo "=== opcm-llama1b-serial: not run ($(left) s left; optional)"
  fi
  if [ "$(left)" -ge 70 ] || [ -n "${GPU_STAGES:-}" ]; then
    stage opcm-llama7b-l4 90 node dist/bench/gpu/bench.js opcm-llama7b-l4
  else
    echo "=== opcm-llama7b-l4: not run ($(left) s left; optional)"
  fi

  echo
  echo "=== done at $(elapsed) s of the ${BUDGET} s budget; failed or skipped: ${FAILED[*]:-none}"
  echo "=== files in $OUT: $(ls "$OUT" | tr '\n' ' ')"
  [ "${#FAILED[@]}" = 0 ]
}

main "$@" 2>&1 | tee -a "$LOG"
exit "${PIPESTATUS[0]}"

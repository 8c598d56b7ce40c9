#!/usr/bin/env bash
# The CUDA engine's check on a GPU machine, with no Node (only a C/C++ compiler, nvcc with cuBLAS, NCCL if present,
# and Python with PyTorch for the peer):
#   1. builds the CPU engine and the CUDA engine as shared libraries (each with native/common: the shared-memory
#      communicator and the host-side layout; and -Bsymbolic, as the studio dlopens them inside a process that has
#      the same symbols), and the C harnesses (test_parity, bench_step, test_dp);
#   2. parity (native/test/test_parity.c): the CUDA engine against the CPU engine in FP32 (with a one-rank
#      communicator of each kind), TF32 and BF16 (each with its tolerances, stated in test_parity.c), the naive
#      attention against the CPU engine, wide heads, BF16 with heads of 64 (the tensor-core attention), and the CUDA
#      engine's flash attention against its naive attention;
#   3. data parallel (native/test/gpu/test_dp.c): two ranks over the shared-memory communicator (on one GPU, or one
#      each), and over NCCL where the machine has two GPUs or more and the build has NCCL;
#   4. throughput: gpt2 (124M) training steps, B=16 T=1024, of the CUDA engine in FP32, TF32 and BF16 (flash
#      attention; tensor cores in BF16), TF32 and BF16 with the naive attention, and BF16 with the FP32 flash
#      kernels, against PyTorch with build-nanogpt's settings (bf16 autocast,
#      flash attention, fused AdamW, torch.compile) on the same GPU; tokens/s and MFU against the H200's dense peaks.
# Everything it prints is also written under $OUT (default native/build/gpu-check): summary.txt, parity-*.txt,
# dp-*.txt, bench.jsonl, build.log.
#
#   bash native/test/gpu/gpu-check.sh              on the GPU machine
#   bash native/test/gpu/gpu-check.sh --cpu-only   here: the CPU half, with tiny shapes (a check of the script)
#   bash native/test/gpu/gpu-check.sh --emulated LIB   here: every GPU step, with tiny shapes, on a prebuilt library
#                                                  of the C API instead of the nvcc build (the CPU emulation's,
#                                                  native/test/emu): a dry run of the whole script
# Environment: GPU_CHECK_BUILD (where it builds; default native/build/gpu), NVCC, CUDA_HOME, GPT2_STUDIO_CUDA_ARCH (default native), GPT2_STUDIO_NCCL=0 (build without NCCL),
# PYTHON, CC, CXX, and the peaks for MFU in TFLOP/s: PEAK_FP32 (default 67), PEAK_TF32 (494), PEAK_BF16 (989).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-$ROOT/native/build/gpu-check}
BUILD=${GPU_CHECK_BUILD:-$ROOT/native/build/gpu}  # the libraries and harnesses
CPU_ONLY=0
EMU_LIB=""
REAL_GPU=1
[ "${1:-}" = "--cpu-only" ] && CPU_ONLY=1 && REAL_GPU=0
if [ "${1:-}" = "--emulated" ]; then
  EMU_LIB=$(readlink -f "${2:?--emulated needs a library of the C API}")
  REAL_GPU=0
fi
mkdir -p "$OUT" "$BUILD"
LOG=$OUT/build.log
: > "$LOG"
say() { echo "[gpu-check] $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
: > "$OUT/bench.jsonl"

# H200 SXM dense peaks (TFLOP/s): BF16 tensor cores 989, TF32 tensor cores 494, FP32 CUDA cores 67
PEAK_FP32=${PEAK_FP32:-67}
PEAK_TF32=${PEAK_TF32:-494}
PEAK_BF16=${PEAK_BF16:-989}

# what both engines link from native/common (the shared-memory communicator, the host-side layout), where the tree has it
COMMON_SRC=()
for f in comm_shm.cpp layout.cpp; do [ -f "$ROOT/native/common/$f" ] && COMMON_SRC+=("$ROOT/native/common/$f"); done

CXX=${CXX:-g++}
CC=${CC:-gcc}
say "CPU engine: $CXX"
if ! "$CXX" -std=c++17 -O3 -march=native -fopenmp -fPIC -shared \
  "$ROOT/native/cpu/model.cpp" "$ROOT/native/cpu/layers.cpp" "$ROOT/native/cpu/gemm.cpp" "${COMMON_SRC[@]}" \
  -o "$BUILD/libgpt2_cpu.so" -Wl,-Bsymbolic -lrt -pthread >>"$LOG" 2>&1; then
  say "FAILED: the CPU engine does not build (see $LOG)"; exit 1
fi
for h in test/test_parity test/bench_step test/gpu/test_dp; do
  if ! "$CC" -O2 "$ROOT/native/$h.c" -o "$BUILD/$(basename "$h")" -ldl -lm >>"$LOG" 2>&1; then
    say "FAILED: native/$h.c does not build (see $LOG)"; exit 1
  fi
done

# a Python package's folder (works for namespace packages such as the nvidia-* wheels' too)
wheel_dir() { python3 -c "import $1 as m; print(list(m.__path__)[0])" 2>/dev/null || true; }

NCCL_BUILT=0
if [ "$CPU_ONLY" = 1 ]; then
  B_LIB=$BUILD/libgpt2_cpu.so
  PARITY_ARGS=(--b-builtin)
  SHAPE=(--layers 2 --heads 2 --channels 64 --seq 64 --B 2 --T 64 --steps 3 --warmup 1)
  PRECISIONS=(fp32)
  TORCH_ARGS=(--device cpu --dtype fp32 --compile 0)
elif [ -n "$EMU_LIB" ]; then
  say "CUDA engine: $EMU_LIB (prebuilt; a dry run)"
  B_LIB=$EMU_LIB
  PARITY_ARGS=()
  # heads of 64 and two 64-row tiles, so that BF16 takes the tensor-core attention
  SHAPE=(--layers 2 --heads 2 --channels 128 --seq 128 --B 1 --T 128 --steps 1 --warmup 1)
  PRECISIONS=(fp32 tf32 bf16)
  TORCH_ARGS=(--device cpu --dtype fp32 --compile 0)
else
  # nvcc and cuBLAS: CUDA_HOME, else the toolkit on PATH; cuBLAS from the toolkit, else a Python nvidia-cublas wheel
  NVCC=${NVCC:-}
  [ -z "$NVCC" ] && [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ] && NVCC=$CUDA_HOME/bin/nvcc
  [ -z "$NVCC" ] && NVCC=$(command -v nvcc || true)
  [ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
  if [ -z "$NVCC" ]; then say "FAILED: nvcc not found (set CUDA_HOME or NVCC)"; exit 1; fi
  NVCC=$(readlink -f "$NVCC")
  CUDA_DIR=$(cd "$(dirname "$NVCC")/.." && pwd)
  INC=""; LIB=""
  for d in "$CUDA_DIR/include" "$CUDA_DIR/targets/x86_64-linux/include"; do [ -f "$d/cublas_v2.h" ] && INC=$d; done
  for d in "$CUDA_DIR/lib64" "$CUDA_DIR/lib" "$CUDA_DIR/targets/x86_64-linux/lib"; do ls "$d"/libcublas.so* >/dev/null 2>&1 && LIB=$d; done
  if [ -z "$INC" ] || [ -z "$LIB" ]; then
    WHEEL=$(wheel_dir nvidia.cublas)
    if [ -n "$WHEEL" ]; then
      [ -f "$WHEEL/include/cublas_v2.h" ] && INC=$WHEEL/include
      ls "$WHEEL"/lib/libcublas.so* >/dev/null 2>&1 && LIB=$WHEEL/lib
      [ -e "$LIB/libcublas.so" ] || { ln -sf "$(ls "$LIB"/libcublas.so.* | head -1)" "$BUILD/libcublas.so"; LINKDIR=$BUILD; }
    fi
  fi
  if [ -z "$INC" ] || [ -z "$LIB" ]; then say "FAILED: cuBLAS not found next to $NVCC nor in a Python nvidia-cublas wheel"; exit 1; fi
  # NCCL: the toolkit's, the system's (libnccl-dev), or a Python nvidia-nccl wheel's; without it, shm only
  NCCL_FLAGS=()
  if [ "${GPT2_STUDIO_NCCL:-1}" != 0 ]; then
    NINC=""; NLIB=""
    for d in "$CUDA_DIR/include" "$CUDA_DIR/targets/x86_64-linux/include" /usr/include; do [ -z "$NINC" ] && [ -f "$d/nccl.h" ] && NINC=$d; done
    for d in "$CUDA_DIR/lib64" "$CUDA_DIR/lib" "$CUDA_DIR/targets/x86_64-linux/lib" /usr/lib/x86_64-linux-gnu /usr/lib64; do
      [ -z "$NLIB" ] && ls "$d"/libnccl.so* >/dev/null 2>&1 && NLIB=$d
    done
    if [ -z "$NINC" ] || [ -z "$NLIB" ]; then
      NW=$(wheel_dir nvidia.nccl)
      if [ -n "$NW" ] && [ -f "$NW/include/nccl.h" ] && ls "$NW"/lib/libnccl.so* >/dev/null 2>&1; then NINC=$NW/include; NLIB=$NW/lib; fi
    fi
    if [ -n "$NINC" ] && [ -n "$NLIB" ]; then
      NLINK=$NLIB
      if [ ! -e "$NLIB/libnccl.so" ]; then mkdir -p "$BUILD/nccl-link"; ln -sf "$(ls "$NLIB"/libnccl.so.* | head -1)" "$BUILD/nccl-link/libnccl.so"; NLINK=$BUILD/nccl-link; fi
      NCCL_FLAGS=(-DGPT2_USE_NCCL "-I$NINC" "-L$NLINK" "-Xlinker=-rpath,$NLIB" -lnccl)
      NCCL_BUILT=1
      say "NCCL: $NINC / $NLIB"
    else
      say "NCCL: not found (no nccl.h and libnccl.so in $CUDA_DIR, /usr, or a Python nvidia-nccl wheel); data parallel over shm only"
    fi
  fi
  ARCH=${GPT2_STUDIO_CUDA_ARCH:-native}
  say "CUDA engine: $NVCC (-arch=$ARCH), cuBLAS $INC / $LIB"
  nvidia-smi -L 2>&1 | tee -a "$OUT/summary.txt"
  T0=$(date +%s)
  if ! "$NVCC" -std=c++17 -O3 "-arch=$ARCH" -shared -Xcompiler -fPIC "-I$INC" "$ROOT/native/cuda/gpt2_cuda.cu" "${COMMON_SRC[@]}" \
    -o "$BUILD/libgpt2_cuda.so" "${NCCL_FLAGS[@]}" "-L${LINKDIR:-$LIB}" "-L$LIB" "-Xlinker=-rpath,$LIB" -Xlinker -Bsymbolic -lcublas -lrt >>"$LOG" 2>&1; then
    say "FAILED: nvcc on native/cuda/gpt2_cuda.cu (the errors are in $LOG):"; grep -m 20 -i "error" "$LOG" | tee -a "$OUT/summary.txt"; exit 1
  fi
  say "built libgpt2_cuda.so in $(( $(date +%s) - T0 )) s"
  B_LIB=$BUILD/libgpt2_cuda.so
  PARITY_ARGS=()
  SHAPE=(--B 16 --T 1024 --steps 10 --warmup 3)
  PRECISIONS=(fp32 tf32 bf16)
  TORCH_ARGS=(--dtype bf16 --compile 1 --peak-tflops "$PEAK_BF16")
fi

STATUS=0
# Most important first, so that a run cut short (the device's time is short) still has the headline: FP32 parity,
# the BF16 tensor-core parity, the BF16 step and its PyTorch peer; then the other parity cases, data parallel, and
# the other steps. Every result is written under $OUT as it comes.

# parity NAME LIB_A ARGS...: test_parity of LIB_A against $B_LIB, into parity-NAME.txt
parity() {
  local name=$1 a=$2; shift 2
  if timeout 150 "$BUILD/test_parity" "$a" "$B_LIB" "$@" >"$OUT/parity-$name.txt" 2>&1; then say "parity $name: pass"; else say "parity $name: FAIL"; STATUS=1; fi
  tail -n 22 "$OUT/parity-$name.txt"
}
# the device's peak for a precision (0 = none: no MFU off the GPU)
peak_of() { [ "$REAL_GPU" = 0 ] && { echo 0; return; }; case $1 in bf16) echo "$PEAK_BF16" ;; tf32) echo "$PEAK_TF32" ;; *) echo "$PEAK_FP32" ;; esac; }
# bench PRECISION [ATTENTION]: one training-step measurement (bench_step) into bench.jsonl
bench() {
  local p=$1 att=${2:-}
  say "throughput: $(basename "$B_LIB") $p${att:+ with GPT2_CUDA_ATTENTION=$att}"
  GPT2_CUDA_ATTENTION=$att timeout 180 "$BUILD/bench_step" "$B_LIB" "${SHAPE[@]}" --precision "$p" --peak-tflops "$(peak_of "$p")" 2>&1 | tee -a "$OUT/bench.jsonl" || STATUS=1
}
# data parallel: two ranks (two processes); shm everywhere, NCCL with two GPUs or more
dp() {
  local kind=$1
  if timeout 150 "$BUILD/test_dp" "$B_LIB" --kind "$kind" >"$OUT/dp-$kind.txt" 2>&1; then say "data parallel ($kind, 2 ranks): pass"; else say "data parallel ($kind, 2 ranks): FAIL"; STATUS=1; fi
  tail -n 6 "$OUT/dp-$kind.txt"
}
# the same, with the id handed over a loopback TCP connection and GPT2_STUDIO_LOCAL_RANK set, as between nodes
dp_tcp() {
  local kind=$1 port=${GPT2_DP_TCP_PORT:-29533} lib=$B_LIB
  # without a GPU the handover is what is checked, on the CPU library (the emulated ranks were checked just above)
  [ "$REAL_GPU" = 0 ] && lib=$BUILD/libgpt2_cpu.so
  if timeout 150 "$BUILD/test_dp" "$lib" --kind "$kind" --tcp "$port" >"$OUT/dp-$kind-tcp.txt" 2>&1; then say "data parallel ($kind, id over TCP, 2 processes): pass"; else say "data parallel ($kind, id over TCP, 2 processes): FAIL"; STATUS=1; fi
  tail -n 6 "$OUT/dp-$kind-tcp.txt"
}

say "parity: $(basename "$B_LIB") against libgpt2_cpu.so"
if timeout 150 "$BUILD/test_parity" "$BUILD/libgpt2_cpu.so" "$B_LIB" "${PARITY_ARGS[@]}" --comm >"$OUT/parity-fp32.txt" 2>&1; then say "parity FP32: pass"; else say "parity FP32: FAIL"; STATUS=1; fi
tail -n 22 "$OUT/parity-fp32.txt"
# BF16 with heads of 64: the tensor-core attention, over three 64-row tiles (the last one partial)
[ "$CPU_ONLY" = 0 ] && parity BF16-hs64-tensor-cores "$BUILD/libgpt2_cpu.so" --b-precision bf16 --heads 2 --channels 128 --seq 150

[ "$REAL_GPU" = 1 ] && say "MFU against the H200's dense peaks: BF16 $PEAK_BF16, TF32 $PEAK_TF32, FP32 $PEAK_FP32 TFLOP/s (PyTorch bf16 autocast: $PEAK_BF16)"
HEADLINE=${PRECISIONS[${#PRECISIONS[@]}-1]}  # bf16 on the GPU
bench "$HEADLINE"
# a Python that has torch: $PYTHON, else python3, else the system one (where Debian's python3-torch lives)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /usr/bin/python3; do "$c" -c 'import torch' >/dev/null 2>&1 && { PY=$c; break; }; done
fi
[ -z "$PY" ] && PY=python3
say "throughput: PyTorch with $PY (${TORCH_ARGS[*]})"
timeout 400 "$PY" "$ROOT/native/test/gpu/bench_torch.py" "${SHAPE[@]}" "${TORCH_ARGS[@]}" 2>>"$LOG" | tee -a "$OUT/bench.jsonl" || { say "PyTorch peer failed (see $LOG)"; STATUS=1; }
# where the headline step's time goes: GPU time per section (GPT2_CUDA_PROFILE=1, CUDA events), a few steps
if [ "$CPU_ONLY" = 0 ]; then
  say "profile: $(basename "$B_LIB") $HEADLINE, GPU time by section"
  GPT2_CUDA_PROFILE=1 timeout 120 "$BUILD/bench_step" "$B_LIB" --steps 3 --warmup 1 "${SHAPE[@]}" --precision "$HEADLINE" >/dev/null 2>"$OUT/profile-$HEADLINE.txt" || STATUS=1
  tee -a "$OUT/summary.txt" <"$OUT/profile-$HEADLINE.txt"
fi

if [ "$CPU_ONLY" = 0 ]; then
  parity TF32 "$BUILD/libgpt2_cpu.so" --b-precision tf32
  parity BF16 "$BUILD/libgpt2_cpu.so" --b-precision bf16
  parity naive-FP32 "$BUILD/libgpt2_cpu.so" --b-env GPT2_CUDA_ATTENTION=naive
  # wide heads: hs 128 and 256 take the flash kernels' second tiling and more than 48 KB of shared memory
  parity FP32-hs128 "$BUILD/libgpt2_cpu.so" --heads 1 --channels 128
  parity FP32-hs256 "$BUILD/libgpt2_cpu.so" --heads 2 --channels 512
  say "parity: flash attention (B) against the naive attention (A), both CUDA FP32"
  parity flash-vs-naive "$B_LIB" --a-env GPT2_CUDA_ATTENTION=naive
fi

dp shm
dp_tcp shm
if [ "$CPU_ONLY" = 0 ]; then
  NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  if [ "$NCCL_BUILT" = 1 ] && [ "${NGPU:-0}" -ge 2 ]; then dp nccl; dp_tcp nccl; else say "data parallel (nccl): skipped (NCCL built: $NCCL_BUILT, GPUs: ${NGPU:-0}; it needs NCCL and 2 GPUs)"; fi
fi

for p in "${PRECISIONS[@]}"; do [ "$p" != "$HEADLINE" ] && bench "$p"; done
if [ "$CPU_ONLY" = 0 ]; then
  # the other attention paths: bf16 above runs the tensor-core kernels (heads of 64)
  bench tf32 naive
  bench bf16 naive
  bench bf16 flash32
fi

# one table: tokens/s, TFLOP/s, MFU and the ratio to PyTorch (lines that are not JSON, e.g. errors, are skipped)
if command -v python3 >/dev/null 2>&1; then
  python3 - "$OUT/bench.jsonl" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
rows = []
for line in open(sys.argv[1]):
    try:
        rows.append(json.loads(line))
    except ValueError:
        pass
peer = next((r for r in rows if "peer" in r), None)
print("%-34s %12s %9s %7s %9s" % ("run", "tokens/s", "TFLOP/s", "MFU", "vs torch"))
for r in rows:
    name = ("pytorch %s %s" % (r.get("dtype", ""), "compiled" if r.get("compile") else "eager")) if "peer" in r else ("engine %s %s" % (r.get("precision"), r.get("attention")))
    mfu = "%.1f%%" % (100 * r["mfu"]) if "mfu" in r else "-"
    ratio = "%.2f" % (r["tokens_per_sec"] / peer["tokens_per_sec"]) if peer and peer.get("tokens_per_sec") else "-"
    print("%-34s %12.1f %9s %7s %9s" % (name, r.get("tokens_per_sec", 0), r.get("tflops", "-"), mfu, ratio))
PYEOF
fi
say "done, status $STATUS; results in $OUT"
exit $STATUS

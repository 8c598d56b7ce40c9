#!/usr/bin/env bash
# The CUDA engine's check on a GPU machine, with no Node (only a C/C++ compiler, nvcc with cuBLAS, and Python with
# PyTorch for the peer):
#   1. builds the CPU engine and the CUDA engine as shared libraries, and the two C harnesses;
#   2. parity: the CUDA engine against the CPU engine (native/test/test_parity.c), FP32 and TF32;
#   3. throughput: gpt2 (124M) training steps, B=16 T=1024, of the CUDA engine (FP32, TF32) against PyTorch with
#      build-nanogpt's settings (bf16 autocast, flash attention, fused AdamW, torch.compile) on the same GPU.
# Everything it prints is also written under $OUT (default native/build/gpu-check): parity-*.txt, bench.jsonl, build.log.
#
#   bash native/test/gpu/gpu-check.sh              on the GPU machine
#   bash native/test/gpu/gpu-check.sh --cpu-only   here: the CPU half, with tiny shapes (a check of the script)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
OUT=${OUT:-$ROOT/native/build/gpu-check}
BUILD=$ROOT/native/build/gpu
CPU_ONLY=0
[ "${1:-}" = "--cpu-only" ] && CPU_ONLY=1
mkdir -p "$OUT" "$BUILD"
LOG=$OUT/build.log
: > "$LOG"
say() { echo "[gpu-check] $*" | tee -a "$OUT/summary.txt"; }
: > "$OUT/summary.txt"
: > "$OUT/bench.jsonl"

CXX=${CXX:-g++}
CC=${CC:-gcc}
say "CPU engine: $CXX"
if ! "$CXX" -std=c++17 -O3 -march=native -fopenmp -fPIC -shared \
  "$ROOT/native/cpu/model.cpp" "$ROOT/native/cpu/layers.cpp" "$ROOT/native/cpu/gemm.cpp" \
  -o "$BUILD/libgpt2_cpu.so" >>"$LOG" 2>&1; then
  say "FAILED: the CPU engine does not build (see $LOG)"; exit 1
fi
for h in test_parity bench_step; do
  if ! "$CC" -O2 "$ROOT/native/test/$h.c" -o "$BUILD/$h" -ldl -lm >>"$LOG" 2>&1; then
    say "FAILED: native/test/$h.c does not build (see $LOG)"; exit 1
  fi
done

if [ "$CPU_ONLY" = 1 ]; then
  B_LIB=$BUILD/libgpt2_cpu.so
  PARITY_ARGS=(--b-builtin)
  SHAPE=(--layers 2 --heads 2 --channels 64 --seq 64 --B 2 --T 64 --steps 3 --warmup 1)
  PRECISIONS=(fp32)
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
    WHEEL=$(python3 -c 'import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))' 2>/dev/null || true)
    if [ -n "$WHEEL" ]; then
      [ -f "$WHEEL/include/cublas_v2.h" ] && INC=$WHEEL/include
      ls "$WHEEL"/lib/libcublas.so* >/dev/null 2>&1 && LIB=$WHEEL/lib
      [ -e "$LIB/libcublas.so" ] || { ln -sf "$(ls "$LIB"/libcublas.so.* | head -1)" "$BUILD/libcublas.so"; LINKDIR=$BUILD; }
    fi
  fi
  if [ -z "$INC" ] || [ -z "$LIB" ]; then say "FAILED: cuBLAS not found next to $NVCC nor in a Python nvidia-cublas wheel"; exit 1; fi
  ARCH=${GPT2_STUDIO_CUDA_ARCH:-native}
  say "CUDA engine: $NVCC (-arch=$ARCH), cuBLAS $INC / $LIB"
  nvidia-smi -L 2>&1 | tee -a "$OUT/summary.txt"
  T0=$(date +%s)
  if ! "$NVCC" -std=c++17 -O3 "-arch=$ARCH" -shared -Xcompiler -fPIC "-I$INC" "$ROOT/native/cuda/gpt2_cuda.cu" \
    -o "$BUILD/libgpt2_cuda.so" "-L${LINKDIR:-$LIB}" "-L$LIB" "-Xlinker=-rpath,$LIB" -lcublas >>"$LOG" 2>&1; then
    say "FAILED: nvcc on native/cuda/gpt2_cuda.cu (the errors are in $LOG):"; grep -m 20 -i "error" "$LOG" | tee -a "$OUT/summary.txt"; exit 1
  fi
  say "built libgpt2_cuda.so in $(( $(date +%s) - T0 )) s"
  B_LIB=$BUILD/libgpt2_cuda.so
  PARITY_ARGS=()
  SHAPE=(--B 16 --T 1024 --steps 10 --warmup 3)
  PRECISIONS=(fp32 tf32)
  TORCH_ARGS=(--dtype bf16 --compile 1)
fi

STATUS=0
say "parity: $(basename "$B_LIB") against libgpt2_cpu.so"
if timeout 300 "$BUILD/test_parity" "$BUILD/libgpt2_cpu.so" "$B_LIB" "${PARITY_ARGS[@]}" >"$OUT/parity-fp32.txt" 2>&1; then say "parity FP32: pass"; else say "parity FP32: FAIL"; STATUS=1; fi
tail -n 15 "$OUT/parity-fp32.txt"
if [ "$CPU_ONLY" = 0 ]; then
  if timeout 300 "$BUILD/test_parity" "$BUILD/libgpt2_cpu.so" "$B_LIB" --tf32-b >"$OUT/parity-tf32.txt" 2>&1; then say "parity TF32: pass"; else say "parity TF32: FAIL"; STATUS=1; fi
  tail -n 15 "$OUT/parity-tf32.txt"
fi

for p in "${PRECISIONS[@]}"; do
  say "throughput: $(basename "$B_LIB") $p"
  timeout 300 "$BUILD/bench_step" "$B_LIB" "${SHAPE[@]}" --precision "$p" 2>&1 | tee -a "$OUT/bench.jsonl" || STATUS=1
done
# a Python that has torch: $PYTHON, else python3, else the system one (where Debian's python3-torch lives)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /usr/bin/python3; do "$c" -c 'import torch' >/dev/null 2>&1 && { PY=$c; break; }; done
fi
[ -z "$PY" ] && PY=python3
say "throughput: PyTorch with $PY (${TORCH_ARGS[*]})"
TORCH_SHAPE=("${SHAPE[@]}")
timeout 400 "$PY" "$ROOT/native/test/gpu/bench_torch.py" "${TORCH_SHAPE[@]}" "${TORCH_ARGS[@]}" 2>>"$LOG" | tee -a "$OUT/bench.jsonl" || { say "PyTorch peer failed (see $LOG)"; STATUS=1; }
say "done, status $STATUS; results in $OUT"
exit $STATUS

#!/usr/bin/env bash
# Builds the CUDA engine (native/cuda/gpt2_cuda.cu and the .cuh files it includes) for the CPU emulation of the CUDA
# toolkit in this folder, as a shared library with the C API of native/include/gpt2.h: libgpt2_cuda_emu.so (see
# README.md); with --selftest, the emulation's own checks (selftest.cu) as the program emu_selftest instead.
#   bash native/test/emu/build.sh OUT_DIR [--asan] [--selftest] [--exact-bf16]
# The sources are compiled by the C++ compiler, not nvcc, after two rewrites of every file of native/cuda (into
# OUT/cuda, where the includes between them find the rewritten copies): kernel<<<grid, block, smem, stream>>>(args)
# becomes emu::launch(kernel, "kernel", grid, block, smem, stream)(args), and `extern __shared__ [__align__(N)] T name[];` becomes a
# pointer to the launch's dynamic shared memory. --asan adds AddressSanitizer, which then also watches the kernels'
# reads and writes of device and shared memory. --exact-bf16 makes bf16 values keep all of a float's bits, so that
# the BF16 paths (the GEMM operands, the tensor-core attention) can be held to FP32 tolerances.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${1:?usage: build.sh OUT_DIR [--asan] [--selftest]}
shift
ASAN=0
SELFTEST=0
EXTRA=()
for a in "$@"; do
  case "$a" in
    --asan) ASAN=1 ;;
    --exact-bf16) EXTRA+=(-DGPT2_EMU_EXACT_BF16) ;;
    --selftest) SELFTEST=1 ;;
    *) echo "build.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
CXX=${CXX:-g++}
mkdir -p "$OUT/cuda"
# rewrite IN OUT: the rewritten file keeps the original's line numbers, so messages point at the original
rewrite() {
  {
    echo "#line 1 \"$1\""
    sed -E \
      -e 's/([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_]+>)?)<<<(.*)>>>\(/::emu::launch(\1, "\1", \3)(/' \
      -e 's/extern __shared__ (__align__\([0-9]+\) )?([A-Za-z_][A-Za-z0-9_]*) ([A-Za-z_][A-Za-z0-9_]*)\[\];/\2* \3 = static_cast<\2*>(::emu::dynamic_shared());/' \
      "$1"
  } > "$2"
  if grep -n '<<<\|extern __shared__' "$2"; then
    echo "build.sh: launches or shared memory declarations left in $1 that the rewrite does not understand (above)" >&2
    exit 1
  fi
}
if [ "$SELFTEST" = 1 ]; then
  SRC=$OUT/emu_selftest.cpp
  rewrite "$HERE/selftest.cu" "$SRC"
else
  for f in "$ROOT"/native/cuda/*.cu "$ROOT"/native/cuda/*.cuh; do rewrite "$f" "$OUT/cuda/$(basename "$f")"; done
  SRC=$OUT/cuda/gpt2_cuda.cu
fi
FLAGS=(-std=c++17 -g -fPIC -Wall -Wno-unused-function -Wno-unknown-pragmas -Wno-subobject-linkage -I "$HERE/include" -I "$ROOT/native/test/stubs" -I "$ROOT/native/cuda")
[ "$ASAN" = 1 ] && FLAGS+=(-fsanitize=address -fno-omit-frame-pointer)
FLAGS+=("${EXTRA[@]}")
# the emulation itself (its GEMMs are most of the time) optimized; the engine at -O1, quick to build, easy to debug
"$CXX" "${FLAGS[@]}" -O3 -c "$HERE/emu.cpp" -o "$OUT/emu.o"
if [ "$SELFTEST" = 1 ]; then
  "$CXX" "${FLAGS[@]}" -O1 "$SRC" "$OUT/emu.o" -o "$OUT/emu_selftest" -pthread
  echo "$OUT/emu_selftest"
  exit 0
fi
"$CXX" "${FLAGS[@]}" -O1 -shared -x c++ "$SRC" -x none "$OUT/emu.o" "$ROOT/native/common/comm_shm.cpp" "$ROOT/native/common/layout.cpp" \
  -o "$OUT/libgpt2_cuda_emu.so" -Wl,-Bsymbolic -lrt -pthread
echo "$OUT/libgpt2_cuda_emu.so"

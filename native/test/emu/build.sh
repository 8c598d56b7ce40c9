#!/usr/bin/env bash
# Builds the CUDA engine (native/cuda/gpt2_cuda.cu) for the CPU emulation of the CUDA toolkit in this folder, as a
# shared library with the C API of native/include/gpt2.h: libgpt2_cuda_emu.so (see README.md).
#   bash native/test/emu/build.sh OUT_DIR [--asan]
# The source is compiled by the C++ compiler, not nvcc, after two rewrites: kernel<<<grid, block, smem, stream>>>(args)
# becomes emu::launch(kernel, "kernel", grid, block, smem, stream)(args), and `extern __shared__ T name[];` becomes a
# pointer to the launch's dynamic shared memory. --asan adds AddressSanitizer, which then also watches the kernels'
# reads and writes of device and shared memory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${1:?usage: build.sh OUT_DIR [--asan]}
ASAN=0
[ "${2:-}" = "--asan" ] && ASAN=1
CXX=${CXX:-g++}
mkdir -p "$OUT"
SRC=$OUT/gpt2_cuda_emu.cpp
# the rewritten source keeps the original's line numbers, so messages point at native/cuda/gpt2_cuda.cu
{
  echo "#line 1 \"$ROOT/native/cuda/gpt2_cuda.cu\""
  sed -E \
    -e 's/([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_]+>)?)<<<(.*)>>>\(/::emu::launch(\1, "\1", \3)(/' \
    -e 's/extern __shared__ ([A-Za-z_][A-Za-z0-9_]*) ([A-Za-z_][A-Za-z0-9_]*)\[\];/\1* \2 = static_cast<\1*>(::emu::dynamic_shared());/' \
    "$ROOT/native/cuda/gpt2_cuda.cu"
} > "$SRC"
if grep -n '<<<\|extern __shared__' "$SRC"; then
  echo "build.sh: launches or shared memory declarations left that the rewrite does not understand (above)" >&2
  exit 1
fi
FLAGS=(-std=c++17 -O1 -g -fPIC -Wall -Wno-unused-function -Wno-unknown-pragmas -Wno-subobject-linkage -I "$HERE/include" -I "$ROOT/native/cuda")
[ "$ASAN" = 1 ] && FLAGS+=(-fsanitize=address -fno-omit-frame-pointer)
"$CXX" "${FLAGS[@]}" -shared "$SRC" "$HERE/emu.cpp" "$ROOT/native/common/comm_shm.cpp" -o "$OUT/libgpt2_cuda_emu.so" \
  -Wl,-Bsymbolic -lrt -pthread
echo "$OUT/libgpt2_cuda_emu.so"

// Zeroed, 64-byte-aligned float buffers for the model's parameters, optimizer state, activations and caches.
//
// Buffers of 1 MB and more come straight from mmap and go back with munmap, so a disposed model returns its memory
// to the system at once (malloc would keep freed blocks under its dynamic mmap threshold in its heap), and pages
// are committed only when first written. Smaller ones use aligned_alloc. A 64-byte header before the data records
// the size and the kind.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace gpt2cpu {

constexpr size_t kHeader = 64;
constexpr size_t kMmapMin = 1 << 20;

/** n zeroed floats, 64-byte aligned; nullptr when out of memory. Free with free_floats. */
inline float* alloc_floats(size_t n) {
  const size_t bytes = kHeader + ((n ? n : 1) * sizeof(float) + 63) / 64 * 64;
  char* base;
  if (bytes >= kMmapMin) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    base = static_cast<char*>(p);  // the kernel zeroes fresh pages
  } else {
    base = static_cast<char*>(std::aligned_alloc(64, bytes));
    if (!base) return nullptr;
    std::memset(base, 0, bytes);
  }
  reinterpret_cast<size_t*>(base)[0] = bytes;
  return reinterpret_cast<float*>(base + kHeader);
}

inline void free_floats(float* p) {
  if (!p) return;
  char* base = reinterpret_cast<char*>(p) - kHeader;
  const size_t bytes = reinterpret_cast<size_t*>(base)[0];
  if (bytes >= kMmapMin) munmap(base, bytes);
  else std::free(base);
}

}  // namespace gpt2cpu

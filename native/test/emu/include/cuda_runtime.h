// CPU emulation of the CUDA toolkit for tests (see ../README.md): the runtime API that the CUDA engine calls, and
// the device side of its kernels.
//
// A kernel launch runs every block of the grid in turn on the calling thread. Within a block each CUDA thread is a
// fiber (ucontext) with its own stack: it runs until it reaches __syncthreads() or a warp shuffle, and the block's
// scheduler resumes the waiting fibers once every live thread of the block (or of the warp) has arrived there.
// A launch is checked as the GPU would check it (block and grid sizes, dynamic shared memory against the 48 KB
// default and cudaFuncSetAttribute) and more strictly: every pointer argument must point into device memory
// (cudaMalloc), device memory and dynamic shared memory start out as NaN bytes, and a thread that waits at a barrier
// the others never reach is reported as a deadlock. Kernels that never synchronize run without fibers after their
// first launch.
#ifndef GPT2_EMU_CUDA_RUNTIME_H
#define GPT2_EMU_CUDA_RUNTIME_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#include <library_types.h>

// the runtime version this emulation stands for (CUDA 13.0), which the engine tests for the APIs it uses
#define CUDART_VERSION 13000

// ---- device-side keywords ----------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// a block's static shared memory: one variable for all of its threads (blocks run one after another)
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorNotReady = 600,
  cudaErrorLaunchOutOfResources = 701,
} cudaError_t;

typedef enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
} cudaMemcpyKind;

typedef enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;

#define cudaEventDisableTiming 0x02

// driver entry points (cudaGetDriverEntryPointByVersion): the emulation has the primary-context state and cuDeviceGet
#define cudaEnableDefault 0x0ULL
enum cudaDriverEntryPointQueryResult {
  cudaDriverEntryPointSuccess = 0,
  cudaDriverEntryPointSymbolNotFound = 1,
  cudaDriverEntryPointVersionNotSufficent = 2
};

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;

struct cudaDeviceProp {
  char name[256];
  int major, minor;
  int multiProcessorCount;
  size_t totalGlobalMem;
  size_t sharedMemPerBlock, sharedMemPerBlockOptin;
  int maxThreadsPerBlock;
};

namespace emu {

/** The CUDA thread running now: its threadIdx. */
struct ThreadState {
  uint3 idx;
};
extern thread_local ThreadState* tl_thread;
extern thread_local uint3 tl_block_idx;
extern thread_local dim3 tl_block_dim, tl_grid_dim;

void syncthreads();
uint64_t shfl_xor(unsigned mask, uint64_t bits, int lane_mask, int width);
void* dynamic_shared();
/** A barrier of the calling thread's warp (every live lane must reach it): __syncwarp and the wmma functions. */
void warp_barrier(const char* what);
/** Fails the run unless a wmma pointer is 32-byte aligned and its leading dimension (in bytes) a multiple of 16. */
void wmma_check(const void* p, size_t ld_bytes, const char* what);
/** The calling thread's lane in its warp. */
int lane_id();
/** Fails the test run (message on stderr, abort) unless [p, p + bytes) lies in one device allocation. */
void require_device(const void* p, size_t bytes, const char* what, const char* kernel, int arg);
void set_max_dynamic_shared(const void* kernel, int bytes);
/** Runs body for every thread of the grid (see the file comment); returns the launch error, also kept as the last error. */
cudaError_t run(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);

template <typename T>
void check_arg(const T&, const char*, int) {}
template <typename T>
void check_arg(T* const& p, const char* name, int i) {
  if (p) require_device(p, 1, "a kernel argument", name, i);
}

template <typename K>
struct Launch {
  K kernel;
  const char* name;
  dim3 grid, block;
  size_t smem;
  template <typename... A>
  void operator()(A... args) const {
    int i = 0;
    (check_arg(args, name, i++), ...);
    K k = kernel;
    run(reinterpret_cast<const void*>(k), name, grid, block, smem, [=]() { k(args...); });
  }
};

/** kernel<<<grid, block, smem, stream>>>(args) is rewritten to emu::launch(kernel, "kernel", grid, block, smem, stream)(args). */
template <typename K>
Launch<K> launch(K kernel, const char* name, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t = nullptr) {
  return Launch<K>{kernel, name, grid, block, smem};
}

}  // namespace emu

#define threadIdx (::emu::tl_thread->idx)
#define blockIdx (::emu::tl_block_idx)
#define blockDim (::emu::tl_block_dim)
#define gridDim (::emu::tl_grid_dim)

inline void __syncthreads() { ::emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::emu::warp_barrier("__syncwarp()"); }
#define __align__(n) alignas(n)

template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = ::emu::shfl_xor(mask, bits, lane_mask, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

// fibers switch only at barriers, so a read-modify-write is atomic
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline double atomicAdd(double* p, double v) {
  const double old = *p;
  *p = old + v;
  return old;
}
inline int atomicAdd(int* p, int v) {
  const int old = *p;
  *p = old + v;
  return old;
}

inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
template <typename A, typename B>
inline typename std::common_type<A, B>::type min(A a, B b) {
  return b < a ? b : a;
}
template <typename A, typename B>
inline typename std::common_type<A, B>::type max(A a, B b) {
  return a < b ? b : a;
}

// ---- host API ----------------------------------------------------------------------------------------------------
cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
template <typename T>
cudaError_t cudaMallocHost(T** p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDevice(int* dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaDeviceSynchronize(void);
/** The emulated device's memory: GPT2_CUDA_EMU_MEMORY bytes when set, else the host's (device memory is host memory). */
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
/** Ends the device's primary context; stops the run when device or pinned allocations are still live. */
cudaError_t cudaDeviceReset(void);
cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** fn, unsigned cuda_version, unsigned long long flags,
                                             cudaDriverEntryPointQueryResult* status = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamQuery(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

template <typename K>
cudaError_t cudaFuncSetAttribute(K* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || value > 232448) return cudaErrorInvalidValue;
  ::emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
  return cudaSuccess;
}

#endif

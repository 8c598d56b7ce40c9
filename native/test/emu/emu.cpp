// CPU emulation of the CUDA toolkit for tests (see README.md): kernel launches on fibers, the runtime API's memory
// and bookkeeping functions, and the GEMMs of cuBLAS that the CUDA engine calls. Built into the same shared library
// as the engine by build.sh.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace emu {

thread_local ThreadState* tl_thread = nullptr;
thread_local uint3 tl_block_idx = {0, 0, 0};
thread_local dim3 tl_block_dim, tl_grid_dim;

[[noreturn]] static void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "[cuda-emu] ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::fflush(stderr);
  std::abort();
}

// ---- device memory -----------------------------------------------------------------------------------------------

struct Alloc {
  size_t bytes;
  bool pinned;  // cudaMallocHost: host memory that kernels may also read
};
static std::mutex g_mem_mutex;
static std::map<uintptr_t, Alloc> g_allocs;
static size_t g_device_bytes = 0;  // live cudaMalloc bytes (cudaMemGetInfo under GPT2_CUDA_EMU_MEMORY)

// The device's primary context, as the driver would report it (cuDevicePrimaryCtxGetState): made by the first call
// that needs one (CUDA 12's cudaSetDevice included), ended by cudaDeviceReset. One device, one flag per process.
static std::atomic<bool> g_context_active{false};
static void context() { g_context_active = true; }

/** The allocation holding [p, p + bytes), or nullptr. */
static const Alloc* find_alloc(const void* p, size_t bytes, uintptr_t* base = nullptr) {
  std::lock_guard<std::mutex> lock(g_mem_mutex);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (a < it->first || a + bytes > it->first + it->second.bytes) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}

void require_device(const void* p, size_t bytes, const char* what, const char* kernel, int arg) {
  if (!find_alloc(p, bytes))
    die("%s: %s (argument %d, %p, %zu bytes) is not inside one device allocation: a host pointer, a freed buffer or an "
        "extent past the end",
        kernel, what, arg, p, bytes);
}

// ---- launches ----------------------------------------------------------------------------------------------------

// ---- fibers ------------------------------------------------------------------------------------------------------
// A context switch is a hand-written register swap on x86-64 (glibc's swapcontext also saves the signal mask, a
// system call that took 90% of the run time), ucontext's elsewhere. Under AddressSanitizer every switch is announced
// to it (__sanitizer_start/finish_switch_fiber), so that it knows which stack is live.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif
#if defined(__x86_64__)
extern "C" void gpt2_emu_switch(void** save_sp, void* to_sp);
asm(R"(
  .text
  .globl gpt2_emu_switch
  .hidden gpt2_emu_switch
  .type gpt2_emu_switch, @function
gpt2_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size gpt2_emu_switch, .-gpt2_emu_switch
)");
struct Context {
  void* sp = nullptr;
  const void* bottom = nullptr;  // the stack, for AddressSanitizer
  size_t size = 0;
  void* fake = nullptr;
};
inline void raw_switch(Context& from, Context& to) { gpt2_emu_switch(&from.sp, to.sp); }
/** Prepares `c` to start entry() on the stack [stack, stack + bytes) at its next switch. */
inline void start_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                               // entry's return address: it never returns
  *--sp = reinterpret_cast<void*>(entry);        // where the switch's ret goes
  for (int i = 0; i < 6; i++) *--sp = nullptr;   // rbp, rbx, r12 to r15
  c.sp = sp;
  c.bottom = stack;
  c.size = bytes;
}
#else
struct Context {
  ucontext_t uc;
  bool ready = false;
  const void* bottom = nullptr;
  size_t size = 0;
  void* fake = nullptr;
};
inline void raw_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
inline void start_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  if (!c.ready) getcontext(&c.uc);
  c.ready = true;
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
  c.bottom = stack;
  c.size = bytes;
}
#endif

/**
 * Runs `to` until it switches back; `last`: `from` never resumes (a fiber that ended). Fibers only switch to and
 * from the scheduler, so the stack that `from` is resumed from is `to`'s: AddressSanitizer's report of it keeps
 * the scheduler's stack bounds, which the fibers' switches back need.
 */
inline void switch_context(Context& from, Context& to, bool last = false) {
#ifdef EMU_ASAN
  __sanitizer_start_switch_fiber(last ? nullptr : &from.fake, to.bottom, to.size);
#endif
  raw_switch(from, to);
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(from.fake, &to.bottom, &to.size);
#endif
  (void)last;
}

enum FiberState { kRunnable, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  ThreadState t;  // first: tl_thread points here
  Context ctx;
  FiberState state = kRunnable;
  uint64_t shfl_in = 0, shfl_out = 0;
  int shfl_lane_mask = 0;
  unsigned shfl_members = 0;
  char* stack = nullptr;
};

constexpr size_t kStackBytes = 256 * 1024;

struct KernelInfo {
  bool sync_free_known = false;  // launched once on fibers without ever synchronizing
  int max_dynamic_shared = 48 * 1024;
};

struct Runner {
  std::vector<std::unique_ptr<Fiber>> fibers;  // stable addresses: a ucontext_t points into itself
  Context sched;
  const std::function<void()>* body = nullptr;
  bool on_fibers = false, synced = false;
  const char* kernel = "";
  unsigned char* smem = nullptr;  // the launch's dynamic shared memory, 128-byte aligned, exactly its size
  size_t smem_bytes = 0;
  ThreadState direct;
};

static thread_local Runner* tl_runner = nullptr;
static std::mutex g_kernels_mutex;
static std::unordered_map<const void*, KernelInfo> g_kernels;
static thread_local cudaError_t tl_last_error = cudaSuccess;
static const bool g_reverse = [] {
  const char* r = std::getenv("GPT2_CUDA_EMU_ORDER");
  return r && !std::strcmp(r, "reverse");
}();

void set_max_dynamic_shared(const void* kernel, int bytes) {
  std::lock_guard<std::mutex> lock(g_kernels_mutex);
  g_kernels[kernel].max_dynamic_shared = bytes;
}

void* dynamic_shared() {
  Runner* r = tl_runner;
  if (!r) die("dynamic shared memory used outside a kernel");
  return r->smem;
}

static Fiber* current_fiber(const char* what) {
  Runner* r = tl_runner;
  if (!r) die("%s outside a kernel", what);
  if (!r->on_fibers)
    die("kernel %s: %s in a launch that runs without fibers (its first launch never synchronized); set GPT2_CUDA_EMU_FIBERS=1",
        r->kernel, what);
  return reinterpret_cast<Fiber*>(tl_thread);
}

void syncthreads() {
  Fiber* f = current_fiber("__syncthreads()");
  Runner* r = tl_runner;
  r->synced = true;
  f->state = kAtBlockBarrier;
  switch_context(f->ctx, r->sched);
}

uint64_t shfl_xor(unsigned mask, uint64_t bits, int lane_mask, int width) {
  Fiber* f = current_fiber("a warp shuffle");
  Runner* r = tl_runner;
  if (width != 32) die("kernel %s: shuffle width %d is not emulated", r->kernel, width);
  r->synced = true;
  f->shfl_in = bits;
  f->shfl_lane_mask = lane_mask;
  f->shfl_members = mask;
  f->state = kAtWarpBarrier;
  switch_context(f->ctx, r->sched);
  return f->shfl_out;
}

int lane_id() {
  const uint3 t = tl_thread->idx;
  return (int)((t.x + tl_block_dim.x * (t.y + tl_block_dim.y * t.z)) % 32);
}

void warp_barrier(const char* what) { shfl_xor(0xffffffffu, 0, 0, 32); (void)what; }

void wmma_check(const void* p, size_t ld_bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ld_bytes % 16 != 0)
    die("kernel %s: %s at %p with a leading dimension of %zu bytes: the pointer must be 32-byte aligned and the leading "
        "dimension a multiple of 16 bytes", tl_runner ? tl_runner->kernel : "?", what, p, ld_bytes);
}

static void fiber_main() {
  Runner* r = tl_runner;
#ifdef EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &r->sched.bottom, &r->sched.size);
#endif
  (*r->body)();
  Fiber* f = reinterpret_cast<Fiber*>(tl_thread);
  f->state = kDone;
  switch_context(f->ctx, r->sched, true);  // never resumed
}

static void run_block_on_fibers(Runner& r, unsigned nthreads) {
  for (unsigned i = 0; i < nthreads; i++) {
    Fiber& f = *r.fibers[i];
    f.state = kRunnable;
    start_context(f.ctx, f.stack, kStackBytes, fiber_main);
  }
  const unsigned nwarps = (nthreads + 31) / 32;
  for (;;) {
    for (unsigned j = 0; j < nthreads; j++) {
      Fiber& f = *r.fibers[g_reverse ? nthreads - 1 - j : j];
      if (f.state != kRunnable) continue;
      tl_thread = &f.t;
      switch_context(r.sched, f.ctx);
    }
    unsigned live = 0, at_block = 0, at_warp = 0;
    for (unsigned i = 0; i < nthreads; i++) {
      live += r.fibers[i]->state != kDone;
      at_block += r.fibers[i]->state == kAtBlockBarrier;
      at_warp += r.fibers[i]->state == kAtWarpBarrier;
    }
    if (live == 0) return;
    bool released = false;
    // a warp whose live threads all wait at a shuffle exchanges its values
    for (unsigned w = 0; w < nwarps; w++) {
      const unsigned lo = w * 32, hi = std::min(nthreads, lo + 32);
      unsigned waiting = 0, alive = 0;
      for (unsigned i = lo; i < hi; i++) {
        alive += r.fibers[i]->state != kDone;
        waiting += r.fibers[i]->state == kAtWarpBarrier;
      }
      if (waiting == 0 || waiting != alive) continue;
      for (unsigned i = lo; i < hi; i++) {
        const Fiber& f = *r.fibers[i];
        if (f.state != kAtWarpBarrier) continue;
        for (unsigned l = 0; l < 32; l++)
          if ((f.shfl_members >> l) & 1u && (lo + l >= hi || r.fibers[lo + l]->state == kDone))
            die("kernel %s, block (%u, %u, %u): thread %u shuffles with mask 0x%08x, but lane %u of its warp has exited", r.kernel,
                tl_block_idx.x, tl_block_idx.y, tl_block_idx.z, i, f.shfl_members, l);
      }
      for (unsigned i = lo; i < hi; i++) {
        Fiber& f = *r.fibers[i];
        if (f.state != kAtWarpBarrier) continue;
        if (f.shfl_lane_mask != r.fibers[lo]->shfl_lane_mask && r.fibers[lo]->state == kAtWarpBarrier)
          die("kernel %s: the threads of warp %u shuffle with different lane masks", r.kernel, w);
        const unsigned src = lo + ((i - lo) ^ (unsigned)f.shfl_lane_mask);
        f.shfl_out = src < hi && r.fibers[src]->state == kAtWarpBarrier ? r.fibers[src]->shfl_in : f.shfl_in;
      }
      for (unsigned i = lo; i < hi; i++)
        if (r.fibers[i]->state == kAtWarpBarrier) r.fibers[i]->state = kRunnable;
      released = true;
    }
    if (released) continue;
    if (at_block == live) {
      if (live < nthreads)
        die("kernel %s, block (%u, %u, %u): divergent __syncthreads(): %u threads wait there, %u have exited without reaching it",
            r.kernel, tl_block_idx.x, tl_block_idx.y, tl_block_idx.z, live, nthreads - live);
      for (unsigned i = 0; i < nthreads; i++)
        if (r.fibers[i]->state == kAtBlockBarrier) r.fibers[i]->state = kRunnable;
      continue;
    }
    die("kernel %s, block (%u, %u, %u): deadlock: of %u live threads, %u wait at __syncthreads() and %u at a warp shuffle", r.kernel,
        tl_block_idx.x, tl_block_idx.y, tl_block_idx.z, live, at_block, at_warp);
  }
}

cudaError_t run(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  const unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
  KernelInfo info;
  {
    std::lock_guard<std::mutex> lock(g_kernels_mutex);
    info = g_kernels[kernel];
  }
  cudaError_t err = cudaSuccess;
  if (nthreads == 0 || nthreads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 ||
      grid.z > 65535 || grid.x > 2147483647u)
    err = cudaErrorInvalidConfiguration;
  else if (smem > (size_t)info.max_dynamic_shared)
    err = cudaErrorInvalidValue;  // over 48 KB needs cudaFuncSetAttribute first
  if (err != cudaSuccess) {
    if (std::getenv("GPT2_CUDA_EMU_VERBOSE"))
      std::fprintf(stderr, "[cuda-emu] %s: launch refused (grid %u x %u x %u, block %u x %u x %u, %zu bytes of shared memory)\n", name,
                   grid.x, grid.y, grid.z, block.x, block.y, block.z, smem);
    tl_last_error = err;
    return err;
  }
  if (tl_runner) die("kernel %s launched from inside kernel %s", name, tl_runner->kernel);
  static thread_local Runner runner;
  Runner& r = runner;
  r.body = &body;
  r.kernel = name;
  r.synced = false;
  std::free(r.smem);
  r.smem = nullptr;
  r.smem_bytes = smem;
  if (smem && posix_memalign(reinterpret_cast<void**>(&r.smem), 128, smem) != 0) die("%s: no memory for %zu bytes of shared memory", name, smem);
  r.on_fibers = !info.sync_free_known || std::getenv("GPT2_CUDA_EMU_FIBERS");
  if (r.on_fibers && r.fibers.size() < nthreads) {
    const size_t had = r.fibers.size();
    r.fibers.resize(nthreads);
    for (size_t i = had; i < nthreads; i++) {
      r.fibers[i].reset(new Fiber());
      void* s = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (s == MAP_FAILED) die("no memory for fiber stacks");
      r.fibers[i]->stack = static_cast<char*>(s);
    }
  }
  tl_runner = &r;
  tl_grid_dim = grid;
  tl_block_dim = block;
  const unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
  for (unsigned long long bj = 0; bj < nblocks; bj++) {
    const unsigned long long b = g_reverse ? nblocks - 1 - bj : bj;
    tl_block_idx = {(unsigned)(b % grid.x), (unsigned)((b / grid.x) % grid.y), (unsigned)(b / ((unsigned long long)grid.x * grid.y))};
    if (smem) std::memset(r.smem, 0xff, smem);  // shared memory starts as garbage: NaN bytes
    for (unsigned i = 0; i < nthreads; i++) {
      ThreadState& t = r.on_fibers ? r.fibers[i]->t : r.direct;
      t.idx = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    }
    if (r.on_fibers) {
      run_block_on_fibers(r, (unsigned)nthreads);
    } else {
      for (unsigned j = 0; j < nthreads; j++) {
        const unsigned i = g_reverse ? (unsigned)nthreads - 1 - j : j;
        r.direct.idx = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
        tl_thread = &r.direct;
        body();
      }
    }
  }
  tl_runner = nullptr;
  tl_thread = nullptr;
  if (r.on_fibers && !r.synced) {
    std::lock_guard<std::mutex> lock(g_kernels_mutex);
    g_kernels[kernel].sync_free_known = true;
  }
  return cudaSuccess;
}

static cudaError_t last(cudaError_t e) {
  if (e != cudaSuccess) tl_last_error = e;
  return e;
}

}  // namespace emu

using emu::die;

// ---- runtime API -------------------------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (!p) return emu::last(cudaErrorInvalidValue);
  const char* limit = std::getenv("GPT2_CUDA_EMU_MEMORY");  // bytes of "device memory" per allocation, to test failures
  if (limit && bytes > (size_t)std::strtoull(limit, nullptr, 10)) {
    *p = nullptr;
    return emu::last(cudaErrorMemoryAllocation);
  }
  emu::context();
  void* m = std::malloc(bytes ? bytes : 1);
  if (!m) return emu::last(cudaErrorMemoryAllocation);
  std::memset(m, 0xff, bytes);  // device memory starts as garbage: NaN bytes
  {
    std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
    emu::g_allocs[reinterpret_cast<uintptr_t>(m)] = {bytes, false};
    emu::g_device_bytes += bytes;
  }
  *p = m;
  return cudaSuccess;
}

static cudaError_t free_tracked(void* p, bool pinned) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
    auto it = emu::g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == emu::g_allocs.end() || it->second.pinned != pinned)
      die("%s(%p): not the start of a live %s allocation (a double free?)", pinned ? "cudaFreeHost" : "cudaFree", p,
          pinned ? "cudaMallocHost" : "cudaMalloc");
    if (!pinned) emu::g_device_bytes -= it->second.bytes;
    emu::g_allocs.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) { return free_tracked(p, false); }

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  emu::context();
  void* m = std::malloc(bytes ? bytes : 1);
  if (!m) return emu::last(cudaErrorMemoryAllocation);
  {
    std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
    emu::g_allocs[reinterpret_cast<uintptr_t>(m)] = {bytes, true};
  }
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) { return free_tracked(p, true); }

/** Checks one side of a copy: device memory (cudaMalloc) when `device`, else anything that is not cudaMalloc memory. */
static void check_side(const void* p, size_t bytes, bool device, const char* side, cudaMemcpyKind kind) {
  if (bytes == 0) return;
  const emu::Alloc* a = emu::find_alloc(p, bytes);
  if (device && (!a || a->pinned))
    die("cudaMemcpy (kind %d): the %s [%p, +%zu bytes) is not inside one device allocation", (int)kind, side, p, bytes);
  if (!device && a && !a->pinned) die("cudaMemcpy (kind %d): the %s %p is device memory, not host memory", (int)kind, side, p);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) check_side(dst, bytes, true, "destination", kind);
  if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost) check_side(dst, bytes, false, "destination", kind);
  if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) check_side(src, bytes, true, "source", kind);
  if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost) check_side(src, bytes, false, "source", kind);
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height, cudaMemcpyKind kind) {
  if (width > dpitch || width > spitch) return emu::last(cudaErrorInvalidValue);  // the GPU refuses a row wider than its pitch
  for (size_t r = 0; r < height; r++) {
    const cudaError_t e = cudaMemcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width, kind);
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes) emu::require_device(p, bytes, "the buffer", "cudaMemset", 0);
  std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = emu::tl_last_error;
  emu::tl_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return emu::tl_last_error; }

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    default: return "unknown error";
  }
}

cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
  if (dev != 0) return emu::last(cudaErrorInvalidDevice);
  emu::context();  // CUDA 12 and later make the primary context here
  return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
/**
 * The emulated device's memory. Under GPT2_CUDA_EMU_MEMORY (the largest allocation it grants) the device has that
 * many bytes, less what cudaMalloc holds; else it is the host's memory, which its allocations come from: the host's
 * total and what Linux says is available (MemAvailable), which already counts the live allocations as used.
 */
static void device_memory(size_t* free_bytes, size_t* total_bytes) {
  if (const char* limit = std::getenv("GPT2_CUDA_EMU_MEMORY"); limit && *limit) {
    const size_t total = (size_t)std::strtoull(limit, nullptr, 10);
    std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
    *total_bytes = total;
    *free_bytes = total > emu::g_device_bytes ? total - emu::g_device_bytes : 0;
    return;
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  *total_bytes = (size_t)sysconf(_SC_PHYS_PAGES) * page;
  *free_bytes = (size_t)sysconf(_SC_AVPHYS_PAGES) * page;  // MemFree, if /proc/meminfo cannot say more
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    unsigned long long kb = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        *free_bytes = (size_t)kb * 1024;
        break;
      }
    std::fclose(f);
  }
  *free_bytes = std::min(*free_bytes, *total_bytes);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int dev) {
  if (dev != 0) return emu::last(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "CPU emulation of sm_90");
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  size_t free_bytes = 0;
  device_memory(&free_bytes, &prop->totalGlobalMem);
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 232448;
  prop->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
  emu::context();
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return emu::last(cudaErrorInvalidValue);
  emu::context();
  device_memory(free_bytes, total_bytes);
  return cudaSuccess;
}

// A reset destroys every allocation of the process on the device: code that resets a device it still uses (a model,
// a communicator's buffers) breaks on a GPU only at its next access, so the emulation stops the run here instead.
cudaError_t cudaDeviceReset(void) {
  {
    std::lock_guard<std::mutex> lock(emu::g_mem_mutex);
    if (!emu::g_allocs.empty()) {
      size_t bytes = 0;
      for (const auto& a : emu::g_allocs) bytes += a.second.bytes;
      die("cudaDeviceReset with %zu live allocations (%zu bytes, cudaMalloc and cudaMallocHost): it would destroy them under "
          "the code that holds them",
          emu::g_allocs.size(), bytes);
    }
  }
  emu::g_context_active = false;
  return cudaSuccess;
}

// The driver's primary-context functions, exported under the driver's names so that a test harness can read the state
// too (native/test/emu/test_device_info.c). CUresult 0 is CUDA_SUCCESS, 101 CUDA_ERROR_INVALID_DEVICE.
extern "C" int cuDeviceGet(int* dev, int ordinal) {
  if (!dev) return 1;  // CUDA_ERROR_INVALID_VALUE
  if (ordinal != 0) return 101;
  *dev = 0;
  return 0;
}
extern "C" int cuDevicePrimaryCtxGetState(int dev, unsigned* flags, int* active) {
  if (!flags || !active) return 1;
  if (dev != 0) return 101;
  *flags = 0;
  *active = emu::g_context_active ? 1 : 0;
  return 0;
}

cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** fn, unsigned, unsigned long long, cudaDriverEntryPointQueryResult* status) {
  if (!symbol || !fn) return emu::last(cudaErrorInvalidValue);
  *fn = !std::strcmp(symbol, "cuDevicePrimaryCtxGetState") ? reinterpret_cast<void*>(&cuDevicePrimaryCtxGetState)
        : !std::strcmp(symbol, "cuDeviceGet")              ? reinterpret_cast<void*>(&cuDeviceGet)
                                                            : nullptr;
  if (status) *status = *fn ? cudaDriverEntryPointSuccess : cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}

// streams and events: all work is done when its call returns
struct CUstream_st {
  int unused;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at{};  // when it was recorded (the work before it is done by then)
};
cudaError_t cudaStreamCreate(cudaStream_t* s) {
  emu::context();
  *s = new CUstream_st();
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  emu::context();
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (!e) return cudaErrorInvalidValue;
  e->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end) return cudaErrorInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

// ---- cuBLAS ------------------------------------------------------------------------------------------------------

struct cublasContext {
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  emu::context();
  *h = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

namespace {

/** TF32: 10 explicit mantissa bits, rounded to nearest (even on ties). */
float to_tf32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return f;
  u += 0xfffu + ((u >> 13) & 1u);
  u &= 0xffffe000u;
  std::memcpy(&f, &u, 4);
  return f;
}

enum class Elem { F32, BF16 };

/** op(X) as a dense row-major (rows, k) matrix of floats, from a column-major operand with leading dimension ld. */
void gather(std::vector<float>& out, const void* X, Elem e, bool trans, int rows, int k, int ld, bool tf32) {
  out.resize((size_t)rows * k);
  for (int i = 0; i < rows; i++)
    for (int p = 0; p < k; p++) {
      // op(X)(i, p): X(i, p) = X[i + p ld] without transposition, X(p, i) = X[p + i ld] with it
      const size_t at = trans ? (size_t)p + (size_t)i * ld : (size_t)i + (size_t)p * ld;
      float v = e == Elem::F32 ? static_cast<const float*>(X)[at] : __bfloat162float(static_cast<const __nv_bfloat16*>(X)[at]);
      out[(size_t)i * k + p] = tf32 ? to_tf32(v) : v;
    }
}

/** A dot product in 16 interleaved partial sums, which the compiler turns into vector code (no fast-math needed). */
float dot(const float* a, const float* b, int k) {
  float acc[16] = {0};
  int p = 0;
  for (; p + 16 <= k; p += 16)
    for (int l = 0; l < 16; l++) acc[l] += a[p + l] * b[p + l];
  float s = 0.f;
  for (; p < k; p++) s += a[p] * b[p];
  for (int l = 0; l < 16; l++) s += acc[l];
  return s;
}

/** The bytes that a column-major operand of `rows` x `cols` (as stored) with leading dimension ld spans. */
size_t span_bytes(int rows, int cols, int ld, size_t elem) { return rows == 0 || cols == 0 ? 0 : ((size_t)(cols - 1) * ld + rows) * elem; }

cublasStatus_t gemm(cublasHandle_t h, const char* fn, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                    const void* A, Elem ea, int lda, const void* B, Elem eb, int ldb, float beta, float* C, int ldc, bool tf32) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool tA = ta == CUBLAS_OP_T, tB = tb == CUBLAS_OP_T;
  // cuBLAS's own checks: sizes and leading dimensions (A stored (m, k) or (k, m), B stored (k, n) or (n, k))
  if (m < 0 || n < 0 || k < 0 || lda < std::max(1, tA ? k : m) || ldb < std::max(1, tB ? n : k) || ldc < std::max(1, m)) {
    std::fprintf(stderr, "[cuda-emu] %s: invalid sizes m=%d n=%d k=%d lda=%d ldb=%d ldc=%d (transa %d, transb %d)\n", fn, m, n, k, lda,
                 ldb, ldc, (int)ta, (int)tb);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const size_t sa = ea == Elem::F32 ? 4 : 2, sb = eb == Elem::F32 ? 4 : 2;
  if (k > 0) {
    emu::require_device(A, span_bytes(tA ? k : m, tA ? m : k, lda, sa), "matrix A", fn, 0);
    emu::require_device(B, span_bytes(tB ? n : k, tB ? k : n, ldb, sb), "matrix B", fn, 1);
  }
  emu::require_device(C, span_bytes(m, n, ldc, 4), "matrix C", fn, 2);
  std::vector<float> a, b;
  gather(a, A, ea, tA, m, k, lda, tf32);
  gather(b, B, eb, !tB, n, k, ldb, tf32);  // B(p, j) as a row-major (n, k): the transpose of op(B)
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      const float* ai = &a[(size_t)i * k];
      const float* bj = &b[(size_t)j * k];
      float s = dot(ai, bj, k);
      float& c = C[(size_t)i + (size_t)j * ldc];
      c = beta == 0.f ? alpha * s : alpha * s + beta * c;  // beta = 0: C is not read (it may hold NaNs)
    }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta, float* C, int ldc) {
  return gemm(h, "cublasSgemm", ta, tb, m, n, k, *alpha, A, Elem::F32, lda, B, Elem::F32, ldb, *beta, C, ldc,
              h && h->math == CUBLAS_TF32_TENSOR_OP_MATH);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda, long long sA, const float* B, int ldb, long long sB,
                                         const float* beta, float* C, int ldc, long long sC, int batch) {
  if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < batch; i++) {
    const cublasStatus_t s = gemm(h, "cublasSgemmStridedBatched", ta, tb, m, n, k, *alpha, A + i * sA, Elem::F32, lda, B + i * sB,
                                  Elem::F32, ldb, *beta, C + i * sC, ldc, h && h->math == CUBLAS_TF32_TENSOR_OP_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb, const void* beta,
                            void* C, cudaDataType Ctype, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t) {
  auto elem = [](cudaDataType t, Elem* e) {
    if (t == CUDA_R_32F) *e = Elem::F32;
    else if (t == CUDA_R_16BF) *e = Elem::BF16;
    else return false;
    return true;
  };
  Elem ea, eb;
  if (!elem(Atype, &ea) || !elem(Btype, &eb) || Ctype != CUDA_R_32F ||
      (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32 && ea == Elem::F32;
  return gemm(h, "cublasGemmEx", ta, tb, m, n, k, *static_cast<const float*>(alpha), A, ea, lda, B, eb, ldb,
              *static_cast<const float*>(beta), static_cast<float*>(C), ldc, tf32);
}

// The shared-memory communicator of native/common/comm_shm.h.
#include "comm_shm.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "../include/gpt2.h"

namespace gpt2shm {
namespace {

constexpr uint64_t kMagic = 0x6770743273686d31ull;  // "gpt2shm1"
constexpr int kMaxWorld = 64;
constexpr int kMaxScalars = 64;
constexpr size_t kControlBytes = 4096;
constexpr size_t kScalarBytes = (size_t)kMaxWorld * kMaxScalars * sizeof(double);
constexpr size_t kDataOffset = kControlBytes + kScalarBytes;

/** The control page. Each field that ranks spin on has its own cache line. */
struct Control {
  alignas(64) std::atomic<uint64_t> magic;
  int32_t world;
  alignas(64) std::atomic<uint32_t> arrived;  // barrier: ranks arrived in this generation
  alignas(64) std::atomic<uint32_t> generation;
  alignas(64) std::atomic<uint32_t> aborted;  // 1 + the rank that aborted, or 0
  alignas(64) std::atomic<uint64_t> capacity;  // floats per slot
  alignas(64) uint64_t count[kMaxWorld];       // each rank's element count in the current reduction (must agree)
};
static_assert(sizeof(Control) <= kControlBytes, "control page");
static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<uint64_t>::is_always_lock_free, "lock-free atomics");

int set_err(std::string* err, int code, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int set_err(std::string* err, int code, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (err) *err = buf;
  return code;
}

void futex_wait(std::atomic<uint32_t>* addr, uint32_t expected, int ms) {
#ifdef __linux__
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAIT, expected, &ts, nullptr, 0);
#else
  (void)addr;
  (void)expected;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 1)));
#endif
}

void futex_wake_all(std::atomic<uint32_t>* addr) {
#ifdef __linux__
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
#else
  (void)addr;
#endif
}

}  // namespace

/**
 * A rank's view of the segment: the control page and scalar rows are mapped once for the communicator's life (so
 * abort() never races with a remap); the float slots behind them are mapped separately and remapped when they grow.
 */
struct Comm {
  int rank = 0;
  int world = 1;
  int fd = -1;
  std::string name;
  unsigned char* head = nullptr;  // [0, kDataOffset): control page and scalar rows
  float* data = nullptr;          // [kDataOffset, ...): world + 1 slots
  size_t data_bytes = 0;
  size_t slot_floats = 0;         // the capacity this rank's data mapping was made for
  Control* ctl() const { return reinterpret_cast<Control*>(head); }
  double* scalars(int r) const { return reinterpret_cast<double*>(head + kControlBytes) + (size_t)r * kMaxScalars; }
  float* slot(int r) const { return data + (size_t)r * slot_floats; }
};

namespace {

/** Waits until every rank has arrived. timeout_ms 0 = no limit. Fails when a rank aborted. */
int barrier(Comm* c, int timeout_ms, std::string* err, const char* what) {
  Control* k = c->ctl();
  const uint32_t gen = k->generation.load(std::memory_order_acquire);
  if (k->arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == (uint32_t)c->world) {
    k->arrived.store(0, std::memory_order_relaxed);
    k->generation.fetch_add(1, std::memory_order_acq_rel);
    futex_wake_all(&k->generation);
    return GPT2_OK;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int spin = 0;; spin++) {
    if (k->generation.load(std::memory_order_acquire) != gen) return GPT2_OK;
    const uint32_t a = k->aborted.load(std::memory_order_acquire);
    if (a) return set_err(err, GPT2_ERR_PEER, "data parallel: rank %u failed, so rank %d stops (%s)", a - 1, c->rank, what);
    if (spin < 4000) continue;
    if (timeout_ms > 0) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
      if (ms > timeout_ms)
        return set_err(err, GPT2_ERR_PEER,
                       "data parallel: rank %d waited %d ms for the other ranks (%s) and gives up; %u of %d arrived", c->rank,
                       timeout_ms, what, k->arrived.load(), c->world);
    }
    futex_wait(&k->generation, gen, 50);  // wakes on a new generation; rechecks abort and timeout every 50 ms
  }
}

/** Maps the slots for `cap` floats each; the old mapping stays in place if the new one fails. */
int map_data(Comm* c, size_t cap, std::string* err) {
  const size_t bytes = (size_t)(c->world + 1) * cap * sizeof(float);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, (off_t)kDataOffset);
  if (p == MAP_FAILED) return set_err(err, GPT2_ERR_MEMORY, "data parallel: mapping %zu bytes of shared memory failed: %s", bytes, std::strerror(errno));
  if (c->data) munmap(c->data, c->data_bytes);
  c->data = static_cast<float*>(p);
  c->data_bytes = bytes;
  c->slot_floats = cap;
  return GPT2_OK;
}

/** Makes every slot hold at least n floats. Every rank calls it with the same n. */
int ensure_capacity(Comm* c, size_t n, std::string* err) {
  if (c->data && c->slot_floats >= n) return GPT2_OK;
  // grow: everyone stops using the old mapping, rank 0 resizes, everyone remaps
  int rc = barrier(c, 0, err, "growing the exchange buffer");
  if (rc) return rc;
  const size_t bytes = kDataOffset + (size_t)(c->world + 1) * n * sizeof(float);
  if (c->rank == 0 && c->ctl()->capacity.load() < n) {
    // reserve the memory now: on tmpfs, ftruncate alone reserves nothing and a write past the limit is a SIGBUS
    const int e = posix_fallocate(c->fd, 0, (off_t)bytes);
    if (e != 0)
      return set_err(err, GPT2_ERR_NO_SPACE,
                     "data parallel: the shared-memory segment needs %.1f MB for %d ranks, but /dev/shm has no room (%s); give it "
                     "more space (docker: --shm-size) or use fewer processes",
                     bytes / 1e6, c->world, std::strerror(e));
    c->ctl()->capacity.store(n);
  }
  rc = barrier(c, 0, err, "growing the exchange buffer");
  if (rc) return rc;
  return map_data(c, c->ctl()->capacity.load(), err);
}

/** An error inside a collective: the other ranks must not wait for this one. */
int failed(Comm* c, int rc) {
  if (rc) abort(c);
  return rc;
}

}  // namespace

int new_id(char* id, size_t id_bytes, std::string* err) {
  std::random_device rd;
  char name[64];
  std::snprintf(name, sizeof name, "/gpt2-studio-%d-%08x%08x", (int)getpid(), rd(), rd());
  const int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return set_err(err, GPT2_ERR_STATE, "data parallel: creating shared memory %s failed: %s", name, std::strerror(errno));
  if (ftruncate(fd, (off_t)kDataOffset) != 0) {
    const int e = errno;
    close(fd);
    shm_unlink(name);
    return set_err(err, GPT2_ERR_MEMORY, "data parallel: sizing shared memory %s failed: %s", name, std::strerror(e));
  }
  void* p = mmap(nullptr, kDataOffset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    shm_unlink(name);
    return set_err(err, GPT2_ERR_MEMORY, "data parallel: mapping shared memory failed: %s", std::strerror(errno));
  }
  Control* k = new (p) Control();  // the segment is zero-filled; this only starts the objects' lifetimes
  k->world = 0;                    // set by the first rank that joins
  k->magic.store(kMagic, std::memory_order_release);
  munmap(p, kDataOffset);
  const int n = std::snprintf(id, id_bytes, "shm:%s", name);
  if (n < 0 || (size_t)n >= id_bytes) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: the id buffer is too small");
  return GPT2_OK;
}

int create(const char* id, int rank, int world, int timeout_ms, Comm** out, std::string* err) {
  if (!out) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: out is null");
  *out = nullptr;
  if (!id || std::strncmp(id, "shm:", 4) != 0)
    return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: \"%s\" is not a shared-memory communicator id (shm:<name>)", id ? id : "(null)");
  const std::string name = id + 4;
  // any failure to join ends the run: remove the name so that nothing is left behind in /dev/shm
  auto give_up = [&](int code) {
    shm_unlink(name.c_str());
    return code;
  };
  if (world < 1 || world > kMaxWorld)
    return give_up(set_err(err, GPT2_ERR_ARGUMENT, "data parallel: world %d is outside [1, %d]", world, kMaxWorld));
  if (rank < 0 || rank >= world)
    return give_up(set_err(err, GPT2_ERR_ARGUMENT, "data parallel: rank %d is outside [0, %d)", rank, world));
  if (timeout_ms <= 0) timeout_ms = 120000;
  Comm* c = new Comm();
  c->rank = rank;
  c->world = world;
  c->name = name;
  c->fd = shm_open(c->name.c_str(), O_RDWR, 0600);
  if (c->fd < 0) {
    const int e = errno;
    delete c;
    return set_err(err, GPT2_ERR_STATE, "data parallel: rank %d cannot open shared memory %s: %s (the first rank makes it; did it exit?)", rank,
                   name.c_str(), std::strerror(e));
  }
  void* p = mmap(nullptr, kDataOffset, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    destroy(c);
    return give_up(set_err(err, GPT2_ERR_MEMORY, "data parallel: mapping shared memory failed: %s", std::strerror(e)));
  }
  c->head = static_cast<unsigned char*>(p);
  Control* k = c->ctl();
  if (k->magic.load(std::memory_order_acquire) != kMagic) {
    destroy(c);
    return give_up(set_err(err, GPT2_ERR_STATE, "data parallel: %s is not a communicator segment", id));
  }
  int expected = 0;
  __atomic_compare_exchange_n(&k->world, &expected, world, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  if (expected != 0 && expected != world) {
    abort(c);
    destroy(c);
    return give_up(set_err(err, GPT2_ERR_ARGUMENT, "data parallel: rank %d joins with world %d, but the communicator has world %d", rank, world, expected));
  }
  const int rc = barrier(c, timeout_ms, err, "joining");
  if (rc) {
    abort(c);
    destroy(c);
    return give_up(rc);
  }
  // everyone has it open: the name is no longer needed, and removing it now (every rank tries, so that one that
  // dies here does not leave it) means a crash leaves nothing behind
  shm_unlink(c->name.c_str());
  *out = c;
  return GPT2_OK;
}

void abort(Comm* c) {
  if (!c || !c->head) return;
  uint32_t zero = 0;
  c->ctl()->aborted.compare_exchange_strong(zero, 1 + c->rank);  // waiters recheck the flag at least every 50 ms
}

void destroy(Comm* c) {
  if (!c) return;
  if (c->data) munmap(c->data, c->data_bytes);
  if (c->head) munmap(c->head, kDataOffset);
  if (c->fd >= 0) close(c->fd);
  delete c;
}

int rank(const Comm* c) { return c ? c->rank : 0; }
int world(const Comm* c) { return c ? c->world : 1; }

int allreduce_mean(Comm* c, float* data, size_t n, std::string* err) {
  if (!c) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: no communicator");
  if (c->world == 1 || n == 0) return GPT2_OK;
  // the ranks must reduce the same number of elements (the same model), or their barriers would not line up
  Control* k = c->ctl();
  k->count[c->rank] = n;
  int rc = barrier(c, 0, err, "exchanging gradients");
  if (rc) return rc;
  for (int r = 0; r < c->world; r++) {
    if (k->count[r] != n)
      return failed(c, set_err(err, GPT2_ERR_ARGUMENT, "data parallel: rank %d reduces %zu values but rank %d reduces %" PRIu64 " (different models?)",
                               c->rank, n, r, k->count[r]));
  }
  rc = ensure_capacity(c, n, err);
  if (rc) return failed(c, rc);
  std::memcpy(c->slot(c->rank), data, n * sizeof(float));
  rc = barrier(c, 0, err, "exchanging gradients");
  if (rc) return rc;
  // this rank's share of the elements, summed over the ranks in rank order
  const size_t per = (n + c->world - 1) / c->world;
  const size_t lo = std::min(n, per * c->rank), hi = std::min(n, lo + per);
  float* res = c->slot(c->world);
  const float inv = 1.0f / (float)c->world;
  std::memcpy(res + lo, c->slot(0) + lo, (hi - lo) * sizeof(float));
  for (int r = 1; r < c->world; r++) {
    const float* s = c->slot(r);
    for (size_t i = lo; i < hi; i++) res[i] += s[i];
  }
  for (size_t i = lo; i < hi; i++) res[i] *= inv;
  rc = barrier(c, 0, err, "exchanging gradients");
  if (rc) return rc;
  std::memcpy(data, res, n * sizeof(float));
  // The next call writes this rank's slot (and count) only after the others have passed its first barrier, which
  // they reach only after copying this result out; so no third barrier is needed.
  return GPT2_OK;
}

int broadcast(Comm* c, float* data, size_t n, std::string* err) {
  if (!c) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: no communicator");
  if (c->world == 1 || n == 0) return GPT2_OK;
  // the same count everywhere, or the ranks' chunks (and barriers) would not line up
  Control* k = c->ctl();
  k->count[c->rank] = n;
  int rc = barrier(c, 0, err, "broadcasting");
  if (rc) return rc;
  for (int r = 0; r < c->world; r++) {
    if (k->count[r] != n)
      return failed(c, set_err(err, GPT2_ERR_ARGUMENT, "data parallel: rank %d broadcasts %zu values but rank %d broadcasts %" PRIu64, c->rank, n, r,
                               k->count[r]));
  }
  // one slot carries a chunk: the capacity that the gradients' reductions made, else a slot of up to 4M floats (16 MB),
  // so that a large broadcast does not make world + 1 slots of its full size. Every rank maps the same capacity, so
  // every rank cuts the same chunks.
  constexpr size_t kMinChunk = size_t(1) << 22;
  rc = ensure_capacity(c, std::min(n, std::max(c->slot_floats, kMinChunk)), err);
  if (rc) return failed(c, rc);
  const size_t chunk = c->slot_floats;
  float* res = c->slot(c->world);
  for (size_t off = 0; off < n; off += chunk) {
    const size_t len = std::min(chunk, n - off);
    if (c->rank == 0) std::memcpy(res, data + off, len * sizeof(float));
    rc = barrier(c, 0, err, "broadcasting");
    if (rc) return rc;
    if (c->rank != 0) std::memcpy(data + off, res, len * sizeof(float));
    // rank 0 writes the next chunk only after everyone has read this one. After the last chunk no barrier is needed:
    // the next collective writes the slots only after a barrier that every rank reaches after its copy.
    if (off + len < n) {
      rc = barrier(c, 0, err, "broadcasting");
      if (rc) return rc;
    }
  }
  return GPT2_OK;
}

int allreduce_mean_f64(Comm* c, double* values, int n, std::string* err) {
  if (!c) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: no communicator");
  if (n < 0 || n > kMaxScalars) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: %d values to reduce; at most %d", n, kMaxScalars);
  if (c->world == 1 || n == 0) return GPT2_OK;
  std::memcpy(c->scalars(c->rank), values, (size_t)n * sizeof(double));
  int rc = barrier(c, 0, err, "exchanging the loss");
  if (rc) return rc;
  double acc[kMaxScalars];
  for (int i = 0; i < n; i++) acc[i] = c->scalars(0)[i];
  for (int r = 1; r < c->world; r++)
    for (int i = 0; i < n; i++) acc[i] += c->scalars(r)[i];
  // everyone must read the slots before anyone overwrites them in the next call
  rc = barrier(c, 0, err, "exchanging the loss");
  if (rc) return rc;
  for (int i = 0; i < n; i++) values[i] = acc[i] / c->world;
  return GPT2_OK;
}

}  // namespace gpt2shm

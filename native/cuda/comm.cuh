// Data parallel: the communicators of the C API (gpt2_comm_*) over NCCL (built with -DGPT2_USE_NCCL; "nccl:" ids, one
// GPU per rank) or over the shared-memory communicator of native/common/comm_shm.h ("shm:" ids, staging the gradients
// through the host), the gradients' all-reduce that gpt2_allreduce_grads runs, and the broadcast of host data from rank
// 0 (gpt2_comm_broadcast). A failed or missing peer is GPT2_ERR_PEER. Part of native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_COMM_CUH
#define GPT2_CUDA_COMM_CUH

#ifdef GPT2_USE_NCCL
#include <nccl.h>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "../common/comm_shm.h"
#include "adamw.cuh"
#include "common.cuh"

struct GPT2Comm {
  int rank = 0, world = 1, device = 0;
  bool aborted = false;
  gpt2shm::Comm* shm = nullptr;  // "shm:" ids: the host stages the gradients
  float* host = nullptr;         // (host_cap) staging, pinned when cudaMallocHost allows it
  size_t host_cap = 0;
  bool host_pinned = false;
#ifdef GPT2_USE_NCCL
  ncclComm_t nccl = nullptr;     // "nccl:" ids (nonblocking, so that joins and failures can be waited on with a limit)
  cudaStream_t stream = nullptr; // the collectives' stream; it waits for the model's work through `ready`
  cudaEvent_t ready = nullptr;
  double* dev_values = nullptr;  // device (64), for gpt2_comm_allreduce_mean
  float* dev_bcast = nullptr;    // device (bcast_cap), gpt2_comm_broadcast's staging
  size_t bcast_cap = 0;
#endif
};

namespace {

constexpr int kCommMaxValues = 64;
#ifdef GPT2_USE_NCCL
constexpr size_t kBcastChunk = size_t(1) << 24;  // floats per ncclBroadcast of gpt2_comm_broadcast (64 MB of staging)
#endif

/**
 * This rank's GPU: GPT2_STUDIO_LOCAL_RANK (the rank's place among the ranks of its own machine, set by a launcher
 * that spans machines, whose layouts may differ) modulo the device count, else the global rank modulo the count.
 */
int rank_device(int rank, int ndev, int* device) {
  const char* local = std::getenv("GPT2_STUDIO_LOCAL_RANK");
  if (local && *local) {
    char* end = nullptr;
    const long v = std::strtol(local, &end, 10);
    if (*end != '\0' || v < 0 || v > 1000000)
      return fail(GPT2_ERR_ARGUMENT, "GPT2_STUDIO_LOCAL_RANK = \"%.40s\" is not a local rank (an integer >= 0)", local);
    *device = (int)(v % ndev);
    return GPT2_OK;
  }
  *device = rank % ndev;
  return GPT2_OK;
}

/** gpt2shm's codes pass through when they are the API's; anything else is a failed exchange (GPT2_ERR_STATE). */
int shm_fail(int rc, const std::string& err, const char* what) {
  const int code = rc >= GPT2_ERR_ARGUMENT && rc <= GPT2_ERR_NO_SPACE ? rc : GPT2_ERR_STATE;
  return fail(code, "%s: %s", what, err.empty() ? "the shared-memory communicator failed" : err.c_str());
}

#ifdef GPT2_USE_NCCL
constexpr int kCommDefaultTimeoutMs = 120000;  // gpt2_comm_create's timeout_ms = 0 (the shm communicator has its own)

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

#define NC(call)                                                                                                   \
  do {                                                                                                             \
    ncclResult_t r_ = (call);                                                                                      \
    if (r_ != ncclSuccess && r_ != ncclInProgress)                                                                 \
      return fail(GPT2_ERR_DEVICE, "%s: %s (%s:%d)", #call, ncclGetErrorString(r_), __FILE__, __LINE__);          \
  } while (0)

void nccl_abort(GPT2Comm* c) {
  if (c->nccl) ncclCommAbort(c->nccl);
  c->nccl = nullptr;
  c->aborted = true;
}

/**
 * Waits until the nonblocking communicator has finished its last call (ncclCommGetAsyncError leaves
 * ncclInProgress). An NCCL error aborts it: GPT2_ERR_PEER when NCCL blames a remote rank (ncclRemoteError), else
 * GPT2_ERR_STATE; so does no progress within timeout_ms (0: no limit), GPT2_ERR_PEER (a rank did not come).
 */
int nccl_settle(GPT2Comm* c, const char* what, int timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    ncclResult_t st = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->nccl, &st);
    if (r != ncclSuccess) st = r;
    if (st == ncclSuccess) return GPT2_OK;
    if (st != ncclInProgress) {
      nccl_abort(c);
      return fail(st == ncclRemoteError ? GPT2_ERR_PEER : GPT2_ERR_STATE, "%s: NCCL reports \"%s\"; the communicator is aborted", what,
                  ncclGetErrorString(st));
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    if (timeout_ms > 0 && ms > timeout_ms) {
      nccl_abort(c);
      return fail(GPT2_ERR_PEER, "%s: not done after %d ms (did every rank join with the same id and world?)", what, timeout_ms);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

/** Waits for the work queued on the communicator's stream, watching NCCL's error state (a failed peer aborts it: GPT2_ERR_PEER). */
int nccl_wait(GPT2Comm* c, const char* what) {
  for (;;) {
    const cudaError_t e = cudaStreamQuery(c->stream);
    if (e == cudaSuccess) return GPT2_OK;
    if (e != cudaErrorNotReady) return fail(GPT2_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(e));
    ncclResult_t st = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->nccl, &st);
    if (r != ncclSuccess) st = r;
    if (st != ncclSuccess && st != ncclInProgress) {
      nccl_abort(c);
      return fail(GPT2_ERR_PEER, "%s: NCCL reports \"%s\" (did another rank fail?); the communicator is aborted", what, ncclGetErrorString(st));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}
#endif

void comm_free(GPT2Comm* c) {
  if (!c) return;
  if (c->shm) gpt2shm::destroy(c->shm);
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    // finalize flushes what is queued; a peer that is gone must not hang it: nccl_settle aborts after 10 s
    const ncclResult_t r = ncclCommFinalize(c->nccl);
    if ((r == ncclSuccess || r == ncclInProgress) && nccl_settle(c, "ncclCommFinalize", 10000) == GPT2_OK) ncclCommDestroy(c->nccl);
    else nccl_abort(c);
    c->nccl = nullptr;
  }
  if (c->ready) cudaEventDestroy(c->ready);
  if (c->stream) cudaStreamDestroy(c->stream);
  cudaFree(c->dev_values);
  cudaFree(c->dev_bcast);
#endif
  if (c->host) {
    if (c->host_pinned) cudaFreeHost(c->host);
    else std::free(c->host);
  }
  delete c;
}

/**
 * grads (n floats on `device`) = their mean over the ranks: NCCL in place after the model's queued work, or over
 * shared memory through a host buffer of the communicator's.
 */
int comm_allreduce_grads(GPT2Comm* c, float* grads, size_t n, int device) {
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    if (c->device != device)
      return fail(GPT2_ERR_ARGUMENT, "the model is on device %d but rank %d's communicator on device %d (create the communicator first, on the same thread)",
                  device, c->rank, c->device);
    // the collective starts after the model's queued work (the legacy default stream), then the mean is taken there
    CU(cudaEventRecord(c->ready, 0));
    CU(cudaStreamWaitEvent(c->stream, c->ready, 0));
    NC(ncclAllReduce(grads, grads, n, ncclFloat, ncclSum, c->nccl, c->stream));
    TRY(nccl_settle(c, "ncclAllReduce", 0));
    TRY(nccl_wait(c, "ncclAllReduce"));
    return scale_floats(grads, 1.f / (float)c->world, n);
  }
#endif
  if (!c->shm) return fail(GPT2_ERR_STATE, "gpt2_allreduce_grads: the communicator has no transport");
  if (n > c->host_cap) {
    if (c->host) {
      if (c->host_pinned) cudaFreeHost(c->host);
      else std::free(c->host);
    }
    c->host = nullptr;
    c->host_cap = 0;
    c->host_pinned = cudaMallocHost(&c->host, n * sizeof(float)) == cudaSuccess;
    if (!c->host_pinned) {
      cudaGetLastError();  // pinned memory is a speed-up only; fall back to plain memory
      c->host = static_cast<float*>(std::malloc(n * sizeof(float)));
    }
    if (!c->host) return fail(GPT2_ERR_MEMORY, "out of host memory for the gradients' staging (%zu floats)", n);
    c->host_cap = n;
  }
  CU(cudaMemcpy(c->host, grads, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::string err;
  const int rc = gpt2shm::allreduce_mean(c->shm, c->host, n, &err);
  if (rc != 0) return shm_fail(rc, err, "gpt2_allreduce_grads(shm)");
  CU(cudaMemcpy(grads, c->host, n * sizeof(float), cudaMemcpyHostToDevice));
  return GPT2_OK;
}

}  // namespace

extern "C" {

int gpt2_comm_new_id(const char* kind, char* id) {
  if (!id) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_new_id: null id");
  id[0] = '\0';
#ifdef GPT2_USE_NCCL
  const bool have_nccl = true;
#else
  const bool have_nccl = false;
#endif
  if (kind && std::strcmp(kind, "nccl") && std::strcmp(kind, "shm"))
    return fail(GPT2_ERR_ARGUMENT, "unknown communicator kind \"%s\" (nccl, shm, or NULL for the build's best)", kind);
  const bool nccl = kind ? !std::strcmp(kind, "nccl") : have_nccl;
  if (!nccl) {
    std::string err;
    const int rc = gpt2shm::new_id(id, GPT2_COMM_ID_BYTES, &err);
    return rc == 0 ? GPT2_OK : shm_fail(rc, err, "gpt2_comm_new_id(shm)");
  }
#ifdef GPT2_USE_NCCL
  ncclUniqueId uid;
  NC(ncclGetUniqueId(&uid));
  static const char digits[] = "0123456789abcdef";
  static_assert(5 + 2 * sizeof(ncclUniqueId) < GPT2_COMM_ID_BYTES, "an NCCL id fits a communicator id");
  std::memcpy(id, "nccl:", 5);
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(&uid);
  for (size_t i = 0; i < sizeof uid; i++) {
    id[5 + 2 * i] = digits[bytes[i] >> 4];
    id[6 + 2 * i] = digits[bytes[i] & 15];
  }
  id[5 + 2 * sizeof uid] = '\0';
  return GPT2_OK;
#else
  return fail(GPT2_ERR_ARGUMENT, "this CUDA build has no NCCL (it was built without -DGPT2_USE_NCCL); use a \"shm\" communicator");
#endif
}

int gpt2_comm_create(const char* id, int rank, int world, int timeout_ms, GPT2Comm** out) {
  if (!id || !out) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_create: null argument");
  *out = nullptr;
  if (world < 1 || rank < 0 || rank >= world || timeout_ms < 0)
    return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_create: rank %d of world %d (timeout %d ms) is not valid", rank, world, timeout_ms);
  const bool is_shm = !std::strncmp(id, "shm:", 4), is_nccl = !std::strncmp(id, "nccl:", 5);
  if (!is_shm && !is_nccl) return fail(GPT2_ERR_ARGUMENT, "communicator id \"%.40s\" is neither shm:<name> nor nccl:<hex>", id);
#ifndef GPT2_USE_NCCL
  if (is_nccl) return fail(GPT2_ERR_ARGUMENT, "this CUDA build has no NCCL (it was built without -DGPT2_USE_NCCL); use a \"shm\" communicator");
#endif
  // one GPU per rank: select it now, so that the model this thread creates next lives on it
  int ndev = 0;
  const cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev < 1) return fail(GPT2_ERR_DEVICE, "no CUDA device for rank %d (%s)", rank, cudaGetErrorString(e));
  int device = 0;
  TRY(rank_device(rank, ndev, &device));
  CU(cudaSetDevice(device));
  GPT2Comm* c = new (std::nothrow) GPT2Comm();
  if (!c) return fail(GPT2_ERR_MEMORY, "out of memory");
  c->rank = rank;
  c->world = world;
  c->device = device;
  if (is_shm) {
    std::string err;
    const int rc = gpt2shm::create(id, rank, world, timeout_ms, &c->shm, &err);
    if (rc != 0) {
      c->shm = nullptr;
      comm_free(c);
      return shm_fail(rc, err, "gpt2_comm_create(shm)");
    }
    *out = c;
    return GPT2_OK;
  }
#ifdef GPT2_USE_NCCL
  ncclUniqueId uid;
  const char* hex = id + 5;
  bool good = std::strlen(hex) == 2 * sizeof uid;
  unsigned char* bytes = reinterpret_cast<unsigned char*>(&uid);
  for (size_t i = 0; good && i < sizeof uid; i++) {
    const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    good = hi >= 0 && lo >= 0;
    bytes[i] = (unsigned char)(hi * 16 + lo);
  }
  if (!good) {
    comm_free(c);
    return fail(GPT2_ERR_ARGUMENT, "communicator id nccl:<hex> must carry %zu hex digits", 2 * sizeof uid);
  }
  int rc = GPT2_OK;
  if (cudaStreamCreate(&c->stream) != cudaSuccess || cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming) != cudaSuccess ||
      cudaMalloc(&c->dev_values, kCommMaxValues * sizeof(double)) != cudaSuccess)
    rc = fail(GPT2_ERR_DEVICE, "rank %d: cannot make the communicator's stream and buffers on device %d", rank, device);
  if (rc == GPT2_OK) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&c->nccl, world, uid, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      rc = fail(GPT2_ERR_DEVICE, "ncclCommInitRankConfig (rank %d of %d, device %d): %s", rank, world, device, ncclGetErrorString(r));
      nccl_abort(c);
    } else {
      rc = nccl_settle(c, "ncclCommInitRank", timeout_ms > 0 ? timeout_ms : kCommDefaultTimeoutMs);
    }
  }
  if (rc != GPT2_OK) {
    comm_free(c);
    return rc;
  }
  *out = c;
  return GPT2_OK;
#else
  comm_free(c);
  return fail(GPT2_ERR_ARGUMENT, "unreachable");
#endif
}

void gpt2_comm_abort(GPT2Comm* c) {
  if (!c) return;
  if (c->shm) gpt2shm::abort(c->shm);
#ifdef GPT2_USE_NCCL
  if (c->nccl) nccl_abort(c);
#endif
  c->aborted = true;
}

void gpt2_comm_destroy(GPT2Comm* c) {
  if (!c) return;
  use_device(c->device);
  comm_free(c);
}

int gpt2_comm_allreduce_mean(GPT2Comm* c, double* values, int n) {
  if (!c || (!values && n > 0)) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_allreduce_mean: null argument");
  if (n < 0 || n > kCommMaxValues) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_allreduce_mean: %d values (0..%d)", n, kCommMaxValues);
  if (c->aborted) return fail(GPT2_ERR_STATE, "gpt2_comm_allreduce_mean: the communicator was aborted");
  if (n == 0 || c->world == 1) return GPT2_OK;
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    TRY(use_device(c->device));
    CU(cudaMemcpyAsync(c->dev_values, values, n * sizeof(double), cudaMemcpyHostToDevice, c->stream));
    NC(ncclAllReduce(c->dev_values, c->dev_values, n, ncclDouble, ncclSum, c->nccl, c->stream));
    TRY(nccl_settle(c, "ncclAllReduce", 0));
    // wait (watching for a failed peer) before the copy: a copy to pageable memory would block in the driver
    TRY(nccl_wait(c, "ncclAllReduce"));
    double sums[kCommMaxValues];
    CU(cudaMemcpy(sums, c->dev_values, n * sizeof(double), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) values[i] = sums[i] / c->world;
    return GPT2_OK;
  }
#endif
  if (!c->shm) return fail(GPT2_ERR_STATE, "gpt2_comm_allreduce_mean: the communicator has no transport");
  std::string err;
  const int rc = gpt2shm::allreduce_mean_f64(c->shm, values, n, &err);
  return rc == 0 ? GPT2_OK : shm_fail(rc, err, "gpt2_comm_allreduce_mean(shm)");
}

int gpt2_comm_broadcast(GPT2Comm* c, float* data, size_t n) {
  if (!c || (!data && n > 0)) return fail(GPT2_ERR_ARGUMENT, "gpt2_comm_broadcast: null argument");
  if (c->aborted) return fail(GPT2_ERR_STATE, "gpt2_comm_broadcast: the communicator was aborted");
  if (n == 0 || c->world == 1) return GPT2_OK;
#ifdef GPT2_USE_NCCL
  if (c->nccl) {
    // host data: staged through a device buffer of the communicator's, in chunks of at most kBcastChunk floats
    TRY(use_device(c->device));
    const size_t cap = std::min(n, kBcastChunk);
    if (c->bcast_cap < cap) {
      cudaFree(c->dev_bcast);
      c->dev_bcast = nullptr;
      c->bcast_cap = 0;
      CU(cudaMalloc(&c->dev_bcast, cap * sizeof(float)));
      c->bcast_cap = cap;
    }
    for (size_t off = 0; off < n; off += c->bcast_cap) {
      const size_t len = std::min(c->bcast_cap, n - off);
      // only rank 0's data is sent; the copy finishes before the call returns (pageable memory)
      if (c->rank == 0) CU(cudaMemcpy(c->dev_bcast, data + off, len * sizeof(float), cudaMemcpyHostToDevice));
      NC(ncclBroadcast(c->dev_bcast, c->dev_bcast, len, ncclFloat, 0, c->nccl, c->stream));
      TRY(nccl_settle(c, "ncclBroadcast", 0));
      TRY(nccl_wait(c, "ncclBroadcast"));
      if (c->rank != 0) CU(cudaMemcpy(data + off, c->dev_bcast, len * sizeof(float), cudaMemcpyDeviceToHost));
    }
    return GPT2_OK;
  }
#endif
  if (!c->shm) return fail(GPT2_ERR_STATE, "gpt2_comm_broadcast: the communicator has no transport");
  std::string err;
  const int rc = gpt2shm::broadcast(c->shm, data, n, &err);
  return rc == 0 ? GPT2_OK : shm_fail(rc, err, "gpt2_comm_broadcast(shm)");
}

}  // extern "C"

#endif

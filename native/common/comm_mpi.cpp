// The MPI communicator of native/common/comm_mpi.h. Without GPT2_USE_MPI (no MPI found by the build) this file is
// empty and native/cpu/model.cpp answers "mpi" ids with the reason.
#ifdef GPT2_USE_MPI

#include "comm_mpi.h"

// the C API only: Open MPI's and MPICH's mpi.h otherwise pull in their C++ bindings, which need another library
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <dlfcn.h>

#include "../include/gpt2.h"

namespace gpt2mpi {
namespace {

constexpr int kMaxScalars = 64;
// floats per round of allreduce_mean: each round is one MPI_Reduce_scatter_block and one MPI_Allgather, whose
// counts are ints; a round of 16M floats (64 MB) keeps the per-rank share far below INT_MAX and the padding buffer
// (for counts that do not divide by the world) small
constexpr size_t kRoundFloats = size_t(1) << 24;
// floats per MPI_Bcast (its count is an int)
constexpr size_t kBcastFloats = size_t(1) << 30;

const char kWorldId[] = "mpi:world";
const char kPortPrefix[] = "mpi:port:";

int set_err(std::string* err, int code, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int set_err(std::string* err, int code, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (err) *err = buf;
  return code;
}

/** MPI's text for an error code (the communicators return codes: MPI_ERRORS_RETURN). */
std::string mpi_text(int code) {
  char s[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(code, s, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  s[std::min(len, MPI_MAX_ERROR_STRING)] = '\0';
  return s;
}

// ---- process-wide state: MPI's initialization, the ports this process opened -------------------------------------

std::mutex g_state;                  // guards the fields below
bool g_we_initialized = false;       // this file called MPI_Init_thread (so it also finalizes)
bool g_multiple = false;             // MPI_THREAD_MULTIPLE: calls from several threads need no lock
std::vector<std::string> g_ports;    // ports opened by new_id and not yet used by rank 0's create
std::atomic<int> g_inflight{0};      // MPI calls in progress on communicators (a blocked one stops finalization)
std::atomic<bool> g_any_aborted{false};
std::recursive_mutex g_calls;        // serializes MPI calls when MPI gives less than MPI_THREAD_MULTIPLE

/** Holds g_calls for an MPI call when MPI needs calls serialized; counts the call as in flight. */
struct CallGuard {
  bool locked = false;
  CallGuard() {
    g_inflight.fetch_add(1);
    if (!g_multiple) {
      g_calls.lock();
      locked = true;
    }
  }
  ~CallGuard() {
    if (locked) g_calls.unlock();
    g_inflight.fetch_sub(1);
  }
  CallGuard(const CallGuard&) = delete;
  CallGuard& operator=(const CallGuard&) = delete;
};

/**
 * At exit: MPI_Finalize, so that mpirun sees a clean end (it reports a process that exits without it as failed).
 * Not after an abort or while a call is blocked in MPI: finalization waits for the other processes of the job,
 * which may never come; the exit then goes on without it.
 */
void finalize_at_exit() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized || g_any_aborted.load()) return;
  // a call that is just finishing (a communicator freed on the executor as the process exits) gets 2 s; one that
  // is blocked waits for peers that may never come, and the exit goes on without finalizing
  for (int i = 0; i < 200 && g_inflight.load() > 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (g_inflight.load() > 0) return;
  {
    std::lock_guard<std::mutex> lock(g_state);
    for (std::string& p : g_ports) MPI_Close_port(p.data());
    g_ports.clear();
  }
  MPI_Finalize();
}

/**
 * The addon is loaded with RTLD_LOCAL, so libmpi's symbols are not global; Open MPI's plugins (dlopen'ed by
 * MPI_Init) expect to find them there and fail to load otherwise. Reopening libmpi with RTLD_GLOBAL | RTLD_NOLOAD
 * promotes the already loaded library. Its path: the object that holds MPI_Init.
 */
void promote_libmpi() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init), &info) && info.dli_fname) {
    void* h = dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    (void)h;  // kept open for the life of the process, as the addon is
  }
}

/** Initializes MPI once per process (or adopts the caller's initialization). */
int ensure_init(std::string* err) {
  std::lock_guard<std::mutex> lock(g_state);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return set_err(err, GPT2_ERR_STATE, "data parallel: MPI was already finalized in this process (it cannot start again)");
  int initialized = 0, provided = MPI_THREAD_SINGLE;
  MPI_Initialized(&initialized);
  if (!initialized) {
    promote_libmpi();
    // the addon calls MPI from its executor thread, and destroys communicators from the JS thread
    const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_STATE, "data parallel: MPI_Init_thread failed: %s", mpi_text(rc).c_str());
    g_we_initialized = true;
    std::atexit(finalize_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < MPI_THREAD_SERIALIZED)
    return set_err(err, GPT2_ERR_STATE,
                   "data parallel: this MPI gives thread level %d, but the engine calls it from more than one thread (it needs "
                   "MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE)",
                   provided);
  g_multiple = provided >= MPI_THREAD_MULTIPLE;
  // errors come back as codes (with MPI_Error_string's text) instead of ending the process
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
  return GPT2_OK;
}

bool is_open_mpi() { return std::strncmp(library_version(), "Open MPI", 8) == 0; }

/** What an "mpi:port:" join needs from Open MPI, said when a port operation fails. */
const char* port_hint() {
  return is_open_mpi() ? " (Open MPI connects separately started processes only when each runs under mpirun -np 1 "
                         "--ompi-server file:URIFILE, with `ompi-server --no-daemonize --report-uri URIFILE` running)"
                       : "";
}

/**
 * Open MPI fails to connect processes that were not started to (a singleton, or mpirun without --ompi-server): the
 * accepting side then waits forever. Said before any port operation: GPT2_OK, or GPT2_ERR_STATE with what to do. A
 * process under srun (PMIx) is let through, as is any other MPI.
 */
int check_port_launch(std::string* err) {
  if (!is_open_mpi()) return GPT2_OK;
  const bool mpirun = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
  const bool other_launcher = std::getenv("PMIX_RANK") || std::getenv("PMI_RANK") || std::getenv("SLURM_PROCID");
  // mpirun --ompi-server URI puts the URI here for the process it starts
  const bool server = std::getenv("OMPI_MCA_pmix_server_uri") != nullptr;
  if (mpirun ? server : other_launcher) return GPT2_OK;
  return set_err(err, GPT2_ERR_STATE,
                 "data parallel: an mpi:port: communicator cannot work here: Open MPI connects separately started processes only "
                 "when each runs under `mpirun -np 1 --ompi-server file:URIFILE`, with `ompi-server --no-daemonize --report-uri "
                 "URIFILE` running, and this process runs %s",
                 mpirun ? "under mpirun without --ompi-server" : "without mpirun");
}

}  // namespace

/** A rank's communicator: its own duplicate of the group, so that its traffic never mixes with another's. */
struct Comm {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int world = 1;
  std::atomic<bool> aborted{false};
  std::vector<float> pad;  // allreduce_mean's buffer for a round whose count does not divide by the world
};

namespace {

/** A failed MPI call on a communicator: the group is no longer usable, so later calls fail at once. */
int call_failed(Comm* c, int rc, const char* call, std::string* err) {
  c->aborted.store(true);
  g_any_aborted.store(true);
  return set_err(err, GPT2_ERR_PEER, "data parallel: %s failed on rank %d (did another rank fail?): %s", call, c->rank, mpi_text(rc).c_str());
}

int check_live(Comm* c, std::string* err) {
  if (!c) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: no communicator");
  if (c->aborted.load())
    return set_err(err, GPT2_ERR_PEER,
                   "data parallel: rank %d's MPI communicator was aborted or failed, so it stops (over MPI the other ranks are ended by "
                   "the process that started them)",
                   c->rank);
  return GPT2_OK;
}

/** Frees a communicator handle of this file (MPI_Comm_free: local, unlike MPI_Comm_disconnect, which can wait long). */
void free_comm(MPI_Comm* comm) {
  if (*comm != MPI_COMM_NULL) MPI_Comm_free(comm);
  *comm = MPI_COMM_NULL;
}

/**
 * After a new rank joined the group `group` (rank 0 = the port's owner): everyone learns rank 0's world, and the
 * newcomer says whether its own world differs; every member then fails together rather than waiting for ranks that
 * will never come.
 */
int agree_on_world(MPI_Comm group, int world, std::string* err) {
  int want = world;
  int rc = MPI_Bcast(&want, 1, MPI_INT, 0, group);
  if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Bcast while joining failed: %s", mpi_text(rc).c_str());
  int bad = want != world ? world : 0;
  rc = MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, group);
  if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Allreduce while joining failed: %s", mpi_text(rc).c_str());
  if (bad) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: a rank joins with world %d, but rank 0 has world %d", bad, want);
  return GPT2_OK;
}

/** Joins an "mpi:port:" group: rank 0 accepts the others one at a time; the result is ordered by requested rank. */
int join_port(const std::string& port, int rank, int world, MPI_Comm* out, std::string* err) {
  if (rank == 0) {
    std::lock_guard<std::mutex> lock(g_state);
    auto it = std::find(g_ports.begin(), g_ports.end(), port);
    if (it == g_ports.end())
      return set_err(err, GPT2_ERR_ARGUMENT,
                     "data parallel: rank 0 must join an mpi:port: id in the process that made it (gpt2_comm_new_id opened the port "
                     "there), and only once");
    g_ports.erase(it);
  }
  // rank 0 closes the port once the group is complete (or the join failed): it serves one group
  struct PortCloser {
    std::string port;
    ~PortCloser() {
      if (!port.empty()) MPI_Close_port(port.data());
    }
  } closer{rank == 0 ? port : std::string()};

  MPI_Comm group = MPI_COMM_NULL;
  int rc;
  if (rank == 0) {
    rc = MPI_Comm_dup(MPI_COMM_SELF, &group);
    if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_STATE, "data parallel: MPI_Comm_dup failed: %s", mpi_text(rc).c_str());
  } else {
    MPI_Comm inter = MPI_COMM_NULL;
    rc = MPI_Comm_connect(port.c_str(), MPI_INFO_NULL, 0, MPI_COMM_SELF, &inter);
    if (rc != MPI_SUCCESS)
      return set_err(err, GPT2_ERR_PEER, "data parallel: rank %d cannot connect to rank 0's MPI port: %s%s", rank, mpi_text(rc).c_str(), port_hint());
    MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
    rc = MPI_Intercomm_merge(inter, 1, &group);  // high: the newcomer comes after the ranks already joined
    free_comm(&inter);
    if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Intercomm_merge failed: %s", mpi_text(rc).c_str());
  }
  MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN);
  auto fail_group = [&](int code) {
    free_comm(&group);
    return code;
  };
  if (rank != 0) {
    if (int e = agree_on_world(group, world, err)) return fail_group(e);
  }
  for (;;) {
    int size = 0;
    MPI_Comm_size(group, &size);
    if (size >= world) break;
    // the next rank: every member of the group accepts it together (the accept is collective over `group`)
    MPI_Comm inter = MPI_COMM_NULL;
    rc = MPI_Comm_accept(port.c_str(), MPI_INFO_NULL, 0, group, &inter);
    if (rc != MPI_SUCCESS)
      return fail_group(set_err(err, GPT2_ERR_PEER, "data parallel: accepting rank %d of %d on the MPI port failed: %s%s", size, world,
                                mpi_text(rc).c_str(), port_hint()));
    MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
    MPI_Comm merged = MPI_COMM_NULL;
    rc = MPI_Intercomm_merge(inter, 0, &merged);
    free_comm(&inter);
    if (rc != MPI_SUCCESS) return fail_group(set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Intercomm_merge failed: %s", mpi_text(rc).c_str()));
    free_comm(&group);
    group = merged;
    MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN);
    if (int e = agree_on_world(group, world, err)) return fail_group(e);
  }
  // the ranks joined in the order they connected: order them as they asked
  MPI_Comm ordered = MPI_COMM_NULL;
  rc = MPI_Comm_split(group, 0, rank, &ordered);
  free_comm(&group);
  if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Comm_split failed: %s", mpi_text(rc).c_str());
  MPI_Comm_set_errhandler(ordered, MPI_ERRORS_RETURN);
  int got = -1;
  MPI_Comm_rank(ordered, &got);
  int bad = got != rank ? 1 : 0;  // two processes asked for the same rank (and so one rank is missing)
  rc = MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, ordered);
  if (rc != MPI_SUCCESS || bad) {
    free_comm(&ordered);
    return rc != MPI_SUCCESS ? set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Allreduce while joining failed: %s", mpi_text(rc).c_str())
                             : set_err(err, GPT2_ERR_ARGUMENT, "data parallel: two processes joined the MPI port as the same rank (rank %d is here)", rank);
  }
  *out = ordered;
  return GPT2_OK;
}

}  // namespace

const char* library_version() {
  static std::once_flag once;
  static char line[MPI_MAX_LIBRARY_VERSION_STRING + 1];
  std::call_once(once, [] {
    int len = 0;
    // allowed before MPI_Init: what the build links, for `gpt2-studio engines`
    if (MPI_Get_library_version(line, &len) != MPI_SUCCESS) len = 0;
    line[std::min(std::max(len, 0), MPI_MAX_LIBRARY_VERSION_STRING)] = '\0';
    line[std::strcspn(line, "\r\n")] = '\0';
  });
  return line;
}

int new_id(char* id, size_t id_bytes, std::string* err) {
  if (int rc = check_port_launch(err)) return rc;
  if (int rc = ensure_init(err)) return rc;
  char port[MPI_MAX_PORT_NAME + 1] = {0};
  int rc;
  {
    CallGuard guard;
    rc = MPI_Open_port(MPI_INFO_NULL, port);
  }
  if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_STATE, "data parallel: MPI_Open_port failed: %s%s", mpi_text(rc).c_str(), port_hint());
  const int n = std::snprintf(id, id_bytes, "%s%s", kPortPrefix, port);
  if (n < 0 || (size_t)n >= id_bytes) {
    MPI_Close_port(port);
    return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: the MPI port name (%zu characters) does not fit a communicator id", std::strlen(port));
  }
  std::lock_guard<std::mutex> lock(g_state);
  g_ports.push_back(port);
  return GPT2_OK;
}

int create(const char* id, int rank, int world, int timeout_ms, Comm** out, std::string* err) {
  (void)timeout_ms;  // MPI cannot give up a connect, an accept or MPI_Init: the launcher ends ranks that wait too long
  if (!out) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: out is null");
  *out = nullptr;
  const bool is_world = id && std::strcmp(id, kWorldId) == 0;
  const bool is_port = id && std::strncmp(id, kPortPrefix, sizeof kPortPrefix - 1) == 0 && id[sizeof kPortPrefix - 1];
  if (!is_world && !is_port)
    return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: \"%.60s\" is not an MPI communicator id (mpi:world or mpi:port:<port>)", id ? id : "(null)");
  if (world < 1 || rank < 0 || rank >= world)
    return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: rank %d of world %d is not valid", rank, world);
  if (is_port && world > 1) {
    if (int rc = check_port_launch(err)) return rc;
  }
  if (int rc = ensure_init(err)) return rc;
  MPI_Comm comm = MPI_COMM_NULL;
  {
    CallGuard guard;
    if (is_world) {
      int mr = -1, mw = 0;
      MPI_Comm_rank(MPI_COMM_WORLD, &mr);
      MPI_Comm_size(MPI_COMM_WORLD, &mw);
      if (mr != rank || mw != world)
        return set_err(err, GPT2_ERR_ARGUMENT,
                       "data parallel: mpi:world was joined as rank %d of world %d, but MPI says this process is rank %d of %d (start "
                       "the ranks with mpirun -np %d, or srun, and pass MPI's rank and size)",
                       rank, world, mr, mw, world);
      const int rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
      if (rc != MPI_SUCCESS) return set_err(err, GPT2_ERR_PEER, "data parallel: MPI_Comm_dup(MPI_COMM_WORLD) failed: %s", mpi_text(rc).c_str());
    } else {
      if (int rc = join_port(id + sizeof kPortPrefix - 1, rank, world, &comm, err)) return rc;
    }
  }
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  Comm* c = new Comm();
  c->comm = comm;
  c->rank = rank;
  c->world = world;
  *out = c;
  return GPT2_OK;
}

void abort(Comm* c) {
  if (!c) return;
  c->aborted.store(true);
  g_any_aborted.store(true);
}

void destroy(Comm* c) {
  if (!c) return;
  if (c->comm != MPI_COMM_NULL) {
    CallGuard guard;
    free_comm(&c->comm);
  }
  delete c;
}

int rank(const Comm* c) { return c ? c->rank : 0; }
int world(const Comm* c) { return c ? c->world : 1; }

int allreduce_mean(Comm* c, float* data, size_t n, std::string* err) {
  if (int rc = check_live(c, err)) return rc;
  if (c->world == 1 || n == 0) return GPT2_OK;
  CallGuard guard;
  // the ranks must reduce the same number of elements (the same model): compare the largest and the smallest count
  unsigned long long counts[2] = {(unsigned long long)n, ~(unsigned long long)n};
  int rc = MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, c->comm);
  if (rc != MPI_SUCCESS) return call_failed(c, rc, "MPI_Allreduce", err);
  if (counts[0] != (unsigned long long)n || ~counts[1] != (unsigned long long)n) {
    c->aborted.store(true);
    return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: rank %d reduces %zu values, but another rank reduces %llu (different models?)", c->rank,
                   n, counts[0] != (unsigned long long)n ? counts[0] : ~counts[1]);
  }
  const size_t W = (size_t)c->world;
  const float inv = 1.0f / (float)c->world;
  for (size_t off = 0; off < n; off += kRoundFloats) {
    const size_t len = std::min(kRoundFloats, n - off);
    const size_t per = (len + W - 1) / W;  // each rank's share of the round
    float* buf = data + off;
    if (per * W != len) {
      // the shares must be equal: pad the round with zeros in a buffer of the communicator's
      if (c->pad.size() < per * W) c->pad.resize(per * W);
      buf = c->pad.data();
      std::memcpy(buf, data + off, len * sizeof(float));
      std::fill(buf + len, buf + per * W, 0.f);
    }
    // share r of the sums lands at buf[0..per) of rank r only: each element is summed once, on one rank
    rc = MPI_Reduce_scatter_block(MPI_IN_PLACE, buf, (int)per, MPI_FLOAT, MPI_SUM, c->comm);
    if (rc != MPI_SUCCESS) return call_failed(c, rc, "MPI_Reduce_scatter_block", err);
    float* mine = buf + (size_t)c->rank * per;
    for (size_t i = 0; i < per; i++) mine[i] = buf[i] * inv;  // rank 0: in place; others: into their own share
    // every rank receives every share as its owner computed it: the same bits everywhere
    rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)per, MPI_FLOAT, c->comm);
    if (rc != MPI_SUCCESS) return call_failed(c, rc, "MPI_Allgather", err);
    if (buf != data + off) std::memcpy(data + off, buf, len * sizeof(float));
  }
  return GPT2_OK;
}

int allreduce_mean_f64(Comm* c, double* values, int n, std::string* err) {
  if (int rc = check_live(c, err)) return rc;
  if (n < 0 || n > kMaxScalars) return set_err(err, GPT2_ERR_ARGUMENT, "data parallel: %d values to reduce; at most %d", n, kMaxScalars);
  if (c->world == 1 || n == 0) return GPT2_OK;
  CallGuard guard;
  // summed on rank 0 and sent to all, so that every rank holds the same bits
  double sums[kMaxScalars];
  int rc = MPI_Reduce(values, sums, n, MPI_DOUBLE, MPI_SUM, 0, c->comm);
  if (rc != MPI_SUCCESS) return call_failed(c, rc, "MPI_Reduce", err);
  if (c->rank == 0)
    for (int i = 0; i < n; i++) sums[i] /= c->world;
  rc = MPI_Bcast(sums, n, MPI_DOUBLE, 0, c->comm);
  if (rc != MPI_SUCCESS) return call_failed(c, rc, "MPI_Bcast", err);
  std::memcpy(values, sums, (size_t)n * sizeof(double));
  return GPT2_OK;
}

int broadcast(Comm* c, float* data, size_t n, std::string* err) {
  if (int rc = check_live(c, err)) return rc;
  if (c->world == 1 || n == 0) return GPT2_OK;
  CallGuard guard;
  for (size_t off = 0; off < n; off += kBcastFloats) {
    const int len = (int)std::min(kBcastFloats, n - off);
    const int rc = MPI_Bcast(data + off, len, MPI_FLOAT, 0, c->comm);
    if (rc != MPI_SUCCESS) return call_failed(c, rc, "MPI_Bcast", err);
  }
  return GPT2_OK;
}

}  // namespace gpt2mpi

#endif  // GPT2_USE_MPI

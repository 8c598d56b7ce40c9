// Data parallel over MPI (the CPU build, compiled in when scripts/build-native.mjs finds mpicc: -DGPT2_USE_MPI).
// Ranks may run on several machines; the MPI library moves the data (shared memory, TCP, InfiniBand, ...).
//
// Ids:
//   "mpi:world"         the MPI_COMM_WORLD of the job this process was launched in (mpirun, srun); the rank and world
//                       given to create() must be MPI's own
//   "mpi:port:<port>"   a port that new_id() opened (MPI_Open_port) in the process of rank 0; rank 0 accepts the other
//                       ranks one at a time (each accept is collective over the ranks already joined, whose group then
//                       grows by MPI_Intercomm_merge), and the group is ordered by the requested ranks (MPI_Comm_split)
//
// Every rank gets the same bits: in allreduce_mean each element's sum is formed on exactly one rank
// (MPI_Reduce_scatter_block), which then hands it to all (MPI_Allgather); the doubles of allreduce_mean_f64 are
// summed on rank 0 and broadcast.
//
// MPI is initialized on first use (MPI_Init_thread, MPI_THREAD_MULTIPLE, else SERIALIZED with every MPI call of this
// file serialized) and finalized when the process exits (atexit), since MPI cannot be initialized twice in a
// process. A blocked MPI call cannot be interrupted: abort() only marks the communicator, so that its later calls
// fail; the process that started the ranks ends the others (mpirun does when one exits with an error).
//
// The functions return GPT2_OK or a code of native/include/gpt2.h with the message in *err.
#ifndef GPT2_COMM_MPI_H
#define GPT2_COMM_MPI_H

#include <cstddef>
#include <string>

namespace gpt2mpi {

struct Comm;

/** The first line of MPI_Get_library_version (e.g. "Open MPI v4.1.4, package: ..."); "" without MPI. */
const char* library_version();
/** Initializes MPI, opens a port and writes its id ("mpi:port:<port>", NUL-terminated) into id. */
int new_id(char* id, size_t id_bytes, std::string* err);
/** Joins rank `rank` of `world` to an "mpi:world" or "mpi:port:" communicator. Blocks until every rank has joined. */
int create(const char* id, int rank, int world, int timeout_ms, Comm** out, std::string* err);
/** Marks the communicator failed: its later calls return GPT2_ERR_PEER (a call blocked in MPI stays blocked). */
void abort(Comm* c);
void destroy(Comm* c);
int rank(const Comm* c);
int world(const Comm* c);
/** In place: data[0..n) = the mean over the ranks, the same bits on every rank. */
int allreduce_mean(Comm* c, float* data, size_t n, std::string* err);
/** In place: values[0..n) = the mean over the ranks (n <= 64). */
int allreduce_mean_f64(Comm* c, double* values, int n, std::string* err);
/** In place: data[0..n) = rank 0's data[0..n). */
int broadcast(Comm* c, float* data, size_t n, std::string* err);

}  // namespace gpt2mpi

#endif

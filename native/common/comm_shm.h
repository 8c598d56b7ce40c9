// Data parallel on one machine without NCCL: ranks (processes) exchange through a POSIX shared-memory segment.
// Used by the CPU build for its communicator and by the CUDA build when NCCL is absent (staging through the host).
//
// Layout of the segment: a control page (magic, world, the barrier), a small area of doubles per rank for scalar
// reductions, then world + 1 float slots of `capacity` floats (one per rank, one for the result), grown on demand.
// A reduction: every rank copies its data into its slot; barrier; rank r sums the slots in rank order over its
// 1/world share of the elements and writes the mean to the result slot; barrier; every rank copies the result out.
// The summation order does not depend on the rank, so every rank gets the same bits. A broadcast: rank 0 copies its
// data into the result slot; barrier; the other ranks copy it out (chunk by chunk when it is larger than a slot).
//
// The functions return GPT2_OK or a code of native/include/gpt2.h with the message in *err: GPT2_ERR_PEER when
// another rank failed (abort) or did not arrive in time, GPT2_ERR_NO_SPACE when /dev/shm has no room for the segment.
#ifndef GPT2_COMM_SHM_H
#define GPT2_COMM_SHM_H

#include <cstddef>
#include <string>

namespace gpt2shm {

struct Comm;

/** Creates a new segment and writes its id ("shm:<name>", NUL-terminated, < 512 bytes) into id. */
int new_id(char* id, size_t id_bytes, std::string* err);
/** Joins rank `rank` of `world`; waits (up to timeout_ms, 0 = 120 s) for every rank to join. */
int create(const char* id, int rank, int world, int timeout_ms, Comm** out, std::string* err);
/** Marks the communicator failed: the other ranks' waiting calls return an error. */
void abort(Comm* c);
void destroy(Comm* c);
int rank(const Comm* c);
int world(const Comm* c);
/** In place: data[0..n) = the mean over the ranks. */
int allreduce_mean(Comm* c, float* data, size_t n, std::string* err);
/** In place: values[0..n) = the mean over the ranks (n <= 64). */
int allreduce_mean_f64(Comm* c, double* values, int n, std::string* err);
/** In place: data[0..n) = rank 0's, copied through the result slot (in chunks of the slots' capacity, at least 4M). */
int broadcast(Comm* c, float* data, size_t n, std::string* err);

}  // namespace gpt2shm

#endif

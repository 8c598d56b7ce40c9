// The calling thread's place in the OpenMP team of the CPU engine (0 of 1 in a build without OpenMP).
#pragma once

#ifdef _OPENMP
#include <omp.h>
#endif

namespace gpt2cpu {

#ifdef _OPENMP
inline int thread_id() { return omp_get_thread_num(); }
inline int team_size() { return omp_get_num_threads(); }
#else
inline int thread_id() { return 0; }
inline int team_size() { return 1; }
#endif

}  // namespace gpt2cpu

// The profiler (GPT2_CUDA_PROFILE=1, read at gpt2_create): CUDA events around each section of the step, their GPU
// time summed over the model's life and printed to stderr by gpt2_destroy, with the useful TFLOP/s of the sections
// that say their work. Profiling is best effort: when an event cannot be made, it stops and the run goes on. Part of
// native/cuda/gpt2_cuda.cu.
#ifndef GPT2_CUDA_PROFILE_CUH
#define GPT2_CUDA_PROFILE_CUH

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common.cuh"

namespace {

/** A model's profile: the events recorded and not yet read back, and the totals per section. */
struct Profile {
  bool on = false;
  std::vector<cudaEvent_t> events;  // a pool, reused after each flush
  size_t used = 0;
  struct Span {
    const char* name;
    size_t start, end;
    double flops;
  };
  std::vector<Span> spans;  // recorded, not yet read back
  struct Total {
    const char* name;
    double ms, flops;
    long calls;
  };
  std::vector<Total> totals;  // in the order first seen
  long steps = 0;
  int B = 0, T = 0;
};

/** Records the next event of the pool on the model's stream; its index. */
size_t prof_mark(Profile& P) {
  if (P.used == P.events.size()) {
    cudaEvent_t e = nullptr;
    if (cudaEventCreate(&e) != cudaSuccess) {  // profiling is best effort: it stops, the run goes on
      (void)cudaGetLastError();
      P.on = false;
      return 0;
    }
    P.events.push_back(e);
  }
  (void)cudaEventRecord(P.events[P.used], 0);
  return P.used++;
}

/** Waits for the recorded spans and adds their times to the totals. */
void prof_flush(Profile& P) {
  if (!P.spans.empty() && P.used > 0 && cudaEventSynchronize(P.events[P.used - 1]) == cudaSuccess) {
    for (const Profile::Span& sp : P.spans) {
      float ms = 0.f;
      if (cudaEventElapsedTime(&ms, P.events[sp.start], P.events[sp.end]) != cudaSuccess) ms = 0.f;
      auto t = std::find_if(P.totals.begin(), P.totals.end(), [&](const Profile::Total& x) { return !std::strcmp(x.name, sp.name); });
      if (t == P.totals.end()) t = P.totals.insert(P.totals.end(), Profile::Total{sp.name, 0.0, 0.0, 0});
      t->ms += ms;
      t->flops += sp.flops;
      t->calls++;
    }
  }
  (void)cudaGetLastError();
  P.spans.clear();
  P.used = 0;
}

/** Prints the totals to stderr, longest first; precision and attention name the model's matmuls and attention path. */
void prof_print(Profile& P, const char* precision, const char* attention) {
  prof_flush(P);
  if (P.totals.empty()) return;
  double sum = 0;
  for (const auto& t : P.totals) sum += t.ms;
  std::vector<Profile::Total> rows = P.totals;
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  std::fprintf(stderr, "[gpt2 cuda profile] %ld forward-backward calls (last B=%d, T=%d), %s matmuls, attention %s; GPU time by section:\n",
               P.steps, P.B, P.T, precision, attention);
  std::fprintf(stderr, "  %-26s %7s %11s %10s %7s %9s\n", "section", "calls", "total ms", "ms/call", "share", "TFLOP/s");
  for (const auto& t : rows) {
    char tf[32] = "-";
    if (t.flops > 0 && t.ms > 0) std::snprintf(tf, sizeof tf, "%.1f", t.flops / (t.ms * 1e-3) / 1e12);
    std::fprintf(stderr, "  %-26s %7ld %11.2f %10.3f %6.1f%% %9s\n", t.name, t.calls, t.ms, t.ms / t.calls, sum > 0 ? 100.0 * t.ms / sum : 0.0, tf);
  }
  std::fprintf(stderr, "  %-26s %7s %11.2f   (TFLOP/s: useful FLOPs; causal attention counts half of T x T)\n", "all sections", "", sum);
}

/** Destroys the pool's events. */
void prof_free(Profile& P) {
  for (cudaEvent_t e : P.events) cudaEventDestroy(e);
  P.events.clear();
  P.used = 0;
}

/** A profiled section: events around its lifetime when the profile is on (flops: the work it does, or 0). */
struct Timed {
  Profile& P;
  const char* name;
  double flops;
  size_t start = 0;
  Timed(Profile& p, const char* n, double f = 0) : P(p), name(n), flops(f) {
    if (P.on) start = prof_mark(P);
  }
  ~Timed() {
    if (P.on) {
      const size_t end = prof_mark(P);
      if (P.on) P.spans.push_back({name, start, end, flops});
    }
  }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;
};

/** Runs the statements after `flops` as a section of M's profile (M: the model in scope). */
#define TIMED(name, flops, ...)         \
  do {                                  \
    Timed timed_(M->prof, name, flops); \
    __VA_ARGS__;                        \
  } while (0)

}  // namespace

#endif

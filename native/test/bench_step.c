/*
 * Training-step throughput of one build of the C API (native/include/gpt2.h), with no Node: a GPT-2 of the given
 * shape with random weights (normal, std 0.02) trains on random tokens with the build-nanogpt step (zero_grad,
 * forward_backward, global norm, clip at 1.0, AdamW), `--warmup` untimed steps, then `--steps` timed ones.
 * Prints ONE JSON line: {"lib", "build", "precision", "attention", "B", "T", "params", "tokens_per_step",
 * "median_step_s", "tokens_per_sec", "flops_per_token", "tflops", "last_loss"}, and with --peak-tflops P also
 * "peak_tflops" and "mfu" (tflops / P: the model FLOPs utilization against the device's peak for that precision).
 * "attention" is GPT2_CUDA_ATTENTION as the CUDA engine reads it at creation ("default" when unset). The loss and
 * norm of every step are read back, so each timed step includes its device work.
 *
 *   bench_step build/libgpt2_cuda.so --precision bf16 --B 16 --T 1024 --peak-tflops 989   gpt2 (124M) on an H200
 *   bench_step build/libgpt2_cpu.so --layers 2 --heads 2 --channels 64 --seq 64 --B 2 --T 64   a quick CPU check
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../include/gpt2.h"

/* a local function pointer of the header's type for each symbol (the library is opened with dlopen) */
#define SYM(name) __typeof__(gpt2_##name)* name = (__typeof__(gpt2_##name)*)need(so, path, "gpt2_" #name)

static void* need(void* so, const char* path, const char* name) {
  void* p = dlsym(so, name);
  if (!p) {
    fprintf(stderr, "%s: missing symbol %s\n", path, name);
    exit(2);
  }
  return p;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64* and Box-Muller: reproducible, no dependency */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double uniform01(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}
static float normal(float std) {
  double u1 = uniform01(), u2 = uniform01();
  if (u1 < 1e-300) u1 = 1e-300;
  return (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static int arg_int(int argc, char** argv, const char* name, int dflt) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return atoi(argv[i + 1]);
  return dflt;
}
static const char* arg_str(int argc, char** argv, const char* name, const char* dflt) {
  for (int i = 2; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return dflt;
}

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: %s LIB.so [--layers 12 --heads 12 --channels 768 --seq 1024 --vocab 50257 --padded 50304 --B 16 --T 1024 --steps 10 --warmup 3 --precision fp32|tf32|bf16 --peak-tflops P]\n", argv[0]);
    return 2;
  }
  const char* path = argv[1];
  void* so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
    return 2;
  }
  SYM(last_error);
  SYM(build_info);
  SYM(create);
  SYM(destroy);
  SYM(set_precision);
  SYM(num_parameters);
  SYM(write);
  SYM(read);
  SYM(forward_backward);
  SYM(zero_grad);
  SYM(grad_norm);
  SYM(scale_grads);
  SYM(adamw);

  GPT2Config cfg;
  cfg.num_layers = arg_int(argc, argv, "--layers", 12);
  cfg.num_heads = arg_int(argc, argv, "--heads", 12);
  cfg.channels = arg_int(argc, argv, "--channels", 768);
  cfg.max_seq_len = arg_int(argc, argv, "--seq", 1024);
  cfg.vocab_size = arg_int(argc, argv, "--vocab", 50257);
  cfg.padded_vocab_size = arg_int(argc, argv, "--padded", 50304);
  cfg.ln_eps = 1e-5f;
  const int B = arg_int(argc, argv, "--B", 16);
  const int T = arg_int(argc, argv, "--T", cfg.max_seq_len);
  const int steps = arg_int(argc, argv, "--steps", 10);
  const int warmup = arg_int(argc, argv, "--warmup", 3);
  const char* precision = arg_str(argc, argv, "--precision", "fp32");
  const int prec = strcmp(precision, "tf32") == 0 ? GPT2_PRECISION_TF32 : strcmp(precision, "bf16") == 0 ? GPT2_PRECISION_BF16 : GPT2_PRECISION_FP32;
  const double peak_tflops = atof(arg_str(argc, argv, "--peak-tflops", "0"));
  const char* attention = getenv("GPT2_CUDA_ATTENTION") && *getenv("GPT2_CUDA_ATTENTION") ? getenv("GPT2_CUDA_ATTENTION") : "default";

#define CHECK(call)                                                                     \
  do {                                                                                  \
    if ((call) != GPT2_OK) {                                                            \
      fprintf(stderr, "%s: %s failed: %s\n", path, #call, last_error());                \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)

  GPT2* model = NULL;
  CHECK(create(&cfg, &model));
  CHECK(set_precision(model, prec));
  const size_t n = num_parameters(model);
  /* random weights, in chunks */
  const size_t chunk = 1 << 20;
  float* buf = (float*)malloc(chunk * sizeof(float));
  for (size_t off = 0; off < n; off += chunk) {
    size_t c = n - off < chunk ? n - off : chunk;
    for (size_t i = 0; i < c; i++) buf[i] = normal(0.02f);
    CHECK(write(model, GPT2_BUF_PARAMS, off, buf, c));
  }
  free(buf);
  int* inputs = (int*)malloc((size_t)B * T * sizeof(int));
  int* targets = (int*)malloc((size_t)B * T * sizeof(int));
  for (int i = 0; i < B * T; i++) {
    inputs[i] = (int)(uniform01() * cfg.vocab_size);
    targets[i] = (int)(uniform01() * cfg.vocab_size);
  }

  double* times = (double*)malloc((size_t)(steps > 0 ? steps : 1) * sizeof(double));
  float loss = 0.f;
  double norm = 0.0;
  for (int s = 0; s < warmup + steps; s++) {
    const double t0 = now_s();
    CHECK(zero_grad(model));
    CHECK(forward_backward(model, inputs, targets, NULL, B, T, 1.0f, &loss));
    CHECK(grad_norm(model, &norm));
    if (norm > 1.0) CHECK(scale_grads(model, (float)(1.0 / (norm + 1e-6))));
    CHECK(adamw(model, 6e-4, 0.9, 0.95, 1e-8, 0.1, s + 1));
    float probe;
    CHECK(read(model, GPT2_BUF_PARAMS, 0, &probe, 1)); /* waits for the update */
    const double dt = now_s() - t0;
    if (!isfinite(loss) || !isfinite(probe)) {
      fprintf(stderr, "%s: step %d gave loss %g, weight %g\n", path, s, loss, probe);
      return 1;
    }
    if (s >= warmup) times[s - warmup] = dt;
  }
  qsort(times, (size_t)steps, sizeof(double), cmp_double);
  const double med = steps > 0 ? (steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2])) : 0.0;
  const double tokens = (double)B * T;
  /* build-nanogpt's count: 6 N + 12 L C T per token (the attention's matmuls), N without wpe's share is close enough */
  const double flops_per_token = 6.0 * (double)n + 12.0 * cfg.num_layers * cfg.channels * (double)T;
  const double tflops = med > 0 ? tokens / med * flops_per_token / 1e12 : 0.0;
  char mfu[96] = "";
  if (peak_tflops > 0) snprintf(mfu, sizeof mfu, ", \"peak_tflops\": %.1f, \"mfu\": %.4f", peak_tflops, tflops / peak_tflops);
  printf("{\"lib\": \"%s\", \"build\": \"%s\", \"precision\": \"%s\", \"attention\": \"%s\", \"B\": %d, \"T\": %d, \"params\": %zu, "
         "\"tokens_per_step\": %.0f, \"median_step_s\": %.6f, \"tokens_per_sec\": %.1f, \"flops_per_token\": %.0f, \"tflops\": %.3f, "
         "\"last_loss\": %.5f%s}\n",
         path, build_info(), precision, attention, B, T, n, tokens, med, med > 0 ? tokens / med : 0.0, flops_per_token, tflops, loss, mfu);
  destroy(model);
  free(inputs);
  free(targets);
  free(times);
  return 0;
}

/*
 * gpt2_device_count / gpt2_device_info on the emulated CUDA library: the answer's shape, and the contract about the
 * device's primary context (native/include/gpt2.h). A question asked before any model exists must give back the
 * context it made; one asked while a model lives must leave that model's context alone (the emulation stops the run
 * if a cudaDeviceReset would destroy live allocations), and the model must still work afterwards.
 *   cc -O2 native/test/emu/test_device_info.c -o test_device_info -ldl && ./test_device_info OUT/libgpt2_cuda_emu.so
 * The emulation exports the driver's cuDevicePrimaryCtxGetState, which this reads; on another library the context
 * checks are skipped (and said so).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../include/gpt2.h"

static int failures = 0;
#define CHECK(cond, ...)                     \
  do {                                       \
    if (!(cond)) {                           \
      printf("FAIL %s: ", #cond);            \
      printf(__VA_ARGS__);                   \
      printf("\n");                          \
      failures++;                            \
    }                                        \
  } while (0)

typedef int (*StateFn)(int dev, unsigned* flags, int* active);

static void* sym(void* so, const char* name) {
  void* f = dlsym(so, name);
  if (!f) {
    printf("FAIL: the library lacks %s\n", name);
    exit(1);
  }
  return f;
}

/** 1 or 0: device 0's primary context is active; -1: the library cannot say. */
static int context_active(StateFn state) {
  unsigned flags = 0;
  int active = 0;
  if (!state || state(0, &flags, &active) != 0) return -1;
  return active;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s LIB\n", argv[0]);
    return 2;
  }
  void* so = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    printf("FAIL: %s\n", dlerror());
    return 1;
  }
  int (*device_count)(int*) = (int (*)(int*))sym(so, "gpt2_device_count");
  int (*device_info)(int, GPT2DeviceInfo*) = (int (*)(int, GPT2DeviceInfo*))sym(so, "gpt2_device_info");
  const char* (*last_error)(void) = (const char* (*)(void))sym(so, "gpt2_last_error");
  int (*create)(const GPT2Config*, GPT2**) = (int (*)(const GPT2Config*, GPT2**))sym(so, "gpt2_create");
  void (*destroy)(GPT2*) = (void (*)(GPT2*))sym(so, "gpt2_destroy");
  int (*logits)(GPT2*, const int*, int, int, float*) = (int (*)(GPT2*, const int*, int, int, float*))sym(so, "gpt2_logits");
  StateFn state = (StateFn)dlsym(so, "cuDevicePrimaryCtxGetState");
  if (!state) printf("this library does not export cuDevicePrimaryCtxGetState: the context checks are skipped\n");

  CHECK(context_active(state) != 1, "a context exists before any call");
  int n = -1;
  CHECK(device_count(&n) == GPT2_OK && n >= 1, "gpt2_device_count: %d (%s)", n, last_error());
  for (int d = 0; d < n; d++) {
    GPT2DeviceInfo info;
    const int rc = device_info(d, &info);
    CHECK(rc == GPT2_OK, "gpt2_device_info(%d): %s", d, last_error());
    if (rc != GPT2_OK) continue;
    printf("device %d: %s, %zu bytes free of %zu\n", info.device, info.name, info.free_bytes, info.total_bytes);
    CHECK(info.device == d, "device %d", info.device);
    CHECK(info.total_bytes > 0 && info.free_bytes <= info.total_bytes, "free %zu of %zu", info.free_bytes, info.total_bytes);
    CHECK(strlen(info.name) > 0 && strlen(info.name) < GPT2_DEVICE_NAME_BYTES, "name \"%s\"", info.name);
  }
  CHECK(context_active(state) != 1, "the question left the context it made behind");
  GPT2DeviceInfo bad;
  CHECK(device_info(n, &bad) == GPT2_ERR_ARGUMENT && strstr(last_error(), "no CUDA device"), "device %d: %s", n, last_error());
  CHECK(device_info(0, NULL) == GPT2_ERR_ARGUMENT, "a null out is refused");

  /* a model lives on device 0: the question must leave its context (and memory) alone */
  GPT2Config cfg = {1, 2, 16, 8, 32, 32, 1e-5f};
  GPT2* model = NULL;
  CHECK(create(&cfg, &model) == GPT2_OK && model, "gpt2_create: %s", last_error());
  if (!model) return 1;
  CHECK(context_active(state) != 0, "a model exists, yet no context");
  GPT2DeviceInfo info;
  CHECK(device_info(0, &info) == GPT2_OK, "gpt2_device_info with a model: %s", last_error());
  CHECK(context_active(state) != 0, "the question took the model's context");
  /* the model still works: parameters written, then logits */
  size_t (*num_params)(const GPT2*) = (size_t (*)(const GPT2*))sym(so, "gpt2_num_parameters");
  int (*write)(GPT2*, int, size_t, const float*, size_t) = (int (*)(GPT2*, int, size_t, const float*, size_t))sym(so, "gpt2_write");
  const size_t np = (size_t)num_params(model);
  float* p = malloc(np * sizeof(float));
  for (size_t i = 0; i < np; i++) p[i] = 0.02f * (float)((i * 2654435761u) % 1000) / 1000.f;
  CHECK(write(model, GPT2_BUF_PARAMS, 0, p, np) == GPT2_OK, "gpt2_write: %s", last_error());
  int tokens[4] = {1, 5, 9, 31};
  float out[4 * 32];
  CHECK(logits(model, tokens, 1, 4, out) == GPT2_OK, "gpt2_logits after the question: %s", last_error());
  int finite = 1;
  for (int i = 0; i < 4 * 32; i++) finite &= isfinite(out[i]) != 0;
  CHECK(finite, "the logits after the question are not finite");
  free(p);
  destroy(model);

  if (failures) {
    printf("%d check(s) failed\n", failures);
    return 1;
  }
  printf("device info ok\n");
  return 0;
}

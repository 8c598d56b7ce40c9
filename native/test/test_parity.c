/*
 * A standalone parity harness for the C API of native/include/gpt2.h, with no Node: it loads two builds of the
 * engine (shared libraries) and checks that they agree on a small random GPT-2. Typical uses:
 *
 *   test_parity build/libgpt2_cpu.so build/libgpt2_cuda.so          CUDA against the CPU engine (on a GPU box)
 *   test_parity build/libgpt2_cpu.so build/libgpt2_cpu.so --b-builtin   BLAS against the built-in SGEMM
 *   test_parity build/libgpt2_cuda.so build/libgpt2_cuda.so --a-env GPT2_CUDA_ATTENTION=naive
 *                                                                   the CUDA engine's flash attention against its naive one
 *
 * Checked: logits, per-token losses (with a mask and an ignored target), four AdamW steps with gradient
 * accumulation and clipping (loss and gradient norm per step, then the weights), and the KV-cache decode against
 * the full logits. Exit status 0 when everything is within tolerance.
 * Options: --a-builtin / --b-builtin (GEMM of each side); --b-precision fp32|tf32|bf16 (side B's matmuls, with the
 * tolerances of that precision; --tf32-b = --b-precision tf32); --a-env NAME=VALUE / --b-env NAME=VALUE (set while
 * that side's model is created, e.g. GPT2_CUDA_ATTENTION, which the CUDA engine reads there); --comm (side B: a
 * one-rank communicator of each kind leaves the gradients and scalars exactly as they are); --heads N, --channels C
 * and --seq T (default 3 heads of 16, T = 37) change the model's shape; --tolerances fp32|tf32|bf16 overrides the
 * tolerances that side B's precision implies (the CPU emulation's exact-bf16 build holds BF16 to FP32's).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../include/gpt2.h"

typedef struct {
  const char* path;
  void* so;
  const char* (*last_error)(void);
  const char* (*build_info)(void);
  int (*create)(const GPT2Config*, GPT2**);
  void (*destroy)(GPT2*);
  int (*set_gemm)(GPT2*, int);
  int (*set_precision)(GPT2*, int);
  size_t (*num_parameters)(const GPT2*);
  int (*read)(GPT2*, int, size_t, float*, size_t);
  int (*write)(GPT2*, int, size_t, const float*, size_t);
  int (*forward_backward)(GPT2*, const int*, const int*, const float*, int, int, float, float*);
  int (*zero_grad)(GPT2*);
  int (*grad_norm)(GPT2*, double*);
  int (*scale_grads)(GPT2*, float);
  int (*adamw)(GPT2*, double, double, double, double, double, int);
  int (*logits)(GPT2*, const int*, int, int, float*);
  int (*token_losses)(GPT2*, const int*, const int*, const float*, int, int, float*);
  int (*cache_create)(GPT2*, int, int, GPT2Cache**);
  void (*cache_destroy)(GPT2Cache*);
  int (*decode)(GPT2*, GPT2Cache*, const int*, int, float*);
  /* data parallel (optional: NULL when the library predates it) */
  int (*comm_new_id)(const char*, char*);
  int (*comm_create)(const char*, int, int, int, GPT2Comm**);
  void (*comm_destroy)(GPT2Comm*);
  int (*allreduce_grads)(GPT2*, GPT2Comm*);
  int (*comm_allreduce_mean)(GPT2Comm*, double*, int);
} Engine;

static void* sym(Engine* e, const char* name) {
  void* p = dlsym(e->so, name);
  if (!p) {
    fprintf(stderr, "%s: missing symbol %s\n", e->path, name);
    exit(2);
  }
  return p;
}

static void load(Engine* e, const char* path) {
  e->path = path;
  /* RTLD_LOCAL: both libraries export the same names */
  e->so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!e->so) {
    fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
    exit(2);
  }
  *(void**)&e->last_error = sym(e, "gpt2_last_error");
  *(void**)&e->build_info = sym(e, "gpt2_build_info");
  *(void**)&e->create = sym(e, "gpt2_create");
  *(void**)&e->destroy = sym(e, "gpt2_destroy");
  *(void**)&e->set_gemm = sym(e, "gpt2_set_gemm");
  *(void**)&e->set_precision = sym(e, "gpt2_set_precision");
  *(void**)&e->num_parameters = sym(e, "gpt2_num_parameters");
  *(void**)&e->read = sym(e, "gpt2_read");
  *(void**)&e->write = sym(e, "gpt2_write");
  *(void**)&e->forward_backward = sym(e, "gpt2_forward_backward");
  *(void**)&e->zero_grad = sym(e, "gpt2_zero_grad");
  *(void**)&e->grad_norm = sym(e, "gpt2_grad_norm");
  *(void**)&e->scale_grads = sym(e, "gpt2_scale_grads");
  *(void**)&e->adamw = sym(e, "gpt2_adamw");
  *(void**)&e->logits = sym(e, "gpt2_logits");
  *(void**)&e->token_losses = sym(e, "gpt2_token_losses");
  *(void**)&e->cache_create = sym(e, "gpt2_cache_create");
  *(void**)&e->cache_destroy = sym(e, "gpt2_cache_destroy");
  *(void**)&e->decode = sym(e, "gpt2_decode");
  *(void**)&e->comm_new_id = dlsym(e->so, "gpt2_comm_new_id");
  *(void**)&e->comm_create = dlsym(e->so, "gpt2_comm_create");
  *(void**)&e->comm_destroy = dlsym(e->so, "gpt2_comm_destroy");
  *(void**)&e->allreduce_grads = dlsym(e->so, "gpt2_allreduce_grads");
  *(void**)&e->comm_allreduce_mean = dlsym(e->so, "gpt2_comm_allreduce_mean");
}

/* NAME=VALUE settings applied while one side's model is created, then put back */
#define MAX_ENV 8
typedef struct {
  int n;
  char name[MAX_ENV][64];
  const char* value[MAX_ENV];
  char* saved[MAX_ENV];
} EnvSet;

static void env_add(EnvSet* e, const char* kv) {
  const char* eq = strchr(kv, '=');
  if (!eq || eq == kv || eq - kv >= 64 || e->n >= MAX_ENV) {
    fprintf(stderr, "bad --a-env / --b-env setting \"%s\" (NAME=VALUE, at most %d)\n", kv, MAX_ENV);
    exit(2);
  }
  memcpy(e->name[e->n], kv, (size_t)(eq - kv));
  e->name[e->n][eq - kv] = '\0';
  e->value[e->n] = eq + 1;
  e->n++;
}
static void env_apply(EnvSet* e) {
  for (int i = 0; i < e->n; i++) {
    const char* old = getenv(e->name[i]);
    e->saved[i] = old ? strdup(old) : NULL;
    setenv(e->name[i], e->value[i], 1);
  }
}
static void env_restore(EnvSet* e) {
  for (int i = 0; i < e->n; i++) {
    if (e->saved[i]) setenv(e->name[i], e->saved[i], 1), free(e->saved[i]);
    else unsetenv(e->name[i]);
  }
}

static void ok(Engine* e, int rc, const char* what) {
  if (rc != GPT2_OK) {
    fprintf(stderr, "%s: %s failed: %s\n", e->path, what, e->last_error());
    exit(2);
  }
}

/* A fixed pseudo-random sequence (xorshift), so both sides get the same numbers. */
static unsigned long long rng_state = 88172645463325252ULL;
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (rng_state >> 11) * (1.0 / 9007199254740992.0);
}
static float nrand(void) { return (float)(sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand())); }

static int failures = 0;
static void expect_close(const char* what, const float* a, const float* b, size_t n, double tol) {
  double worst = 0, scale = 1;
  for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) && isnan(b[i])) continue;
    double d = fabs((double)a[i] - b[i]) / scale;
    if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
  }
  int pass = worst < tol;
  failures += !pass;
  printf("%-44s max rel diff %.2e (tolerance %.0e) %s\n", what, worst, tol, pass ? "ok" : "FAIL");
}
/*
 * Tolerances by side B's matmul precision. FP32: the two engines differ only in summation order; the weights after
 * four AdamW steps still get 1e-4, as an element whose gradient is about eps (1e-8) takes an Adam step that follows
 * the gradient's last bits (1.2e-5 measured with one 128-wide head in the CPU emulation of native/test/emu).
 * TF32 rounds each GEMM input to 10 explicit mantissa bits (unit roundoff 2^-11 = 4.9e-4). BF16 keeps 7 (unit roundoff 2^-8 =
 * 3.9e-3), 8 times coarser than TF32, so the forward, loss and norm bounds are TF32's times 8. The weights after four
 * AdamW steps are bounded differently, and alike in both reduced precisions (TF32 reaches 3.7e-3 in the CPU
 * emulation of native/test/emu): Adam's step is close to lr in magnitude whatever the gradient's size, so an element
 * whose gradient is near zero can move by up to lr (3e-3) per step in the opposite direction on the two
 * sides: 4 steps x 2 x 3e-3 = 2.4e-2 is the worst case that still means nothing is wrong; a wrong layout or a wrong
 * kernel shows up in the logits, the losses and the norms long before. The second moment v (about g^2) doubles the
 * gradients' relative error. The KV-cache check compares two computations on side B with different GEMM shapes,
 * whose inputs round to different low bits once they differ at all, so it follows the forward tolerance.
 */
typedef struct {
  const char* name;
  double forward, loss, norm, weights, adam_v, decode;
} Tolerances;
static const Tolerances kTolerances[] = {
    {"fp32", 1e-4, 1e-5, 1e-4, 1e-4, 1e-4, 1e-4},
    {"tf32", 5e-3, 1e-3, 1e-2, 2.5e-2, 1e-2, 5e-3},
    {"bf16", 4e-2, 8e-3, 8e-2, 2.5e-2, 1.6e-1, 4e-2},
};

static void expect_near(const char* what, double a, double b, double tol) {
  double d = fabs(a - b) / fmax(fabs(b), 1e-12);
  int pass = d < tol;
  failures += !pass;
  printf("%-44s %.8g vs %.8g, rel %.2e (tolerance %.0e) %s\n", what, a, b, d, tol, pass ? "ok" : "FAIL");
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s LIB_A.so LIB_B.so [--a-builtin] [--b-builtin] [--b-precision fp32|tf32|bf16] [--tf32-b] "
                    "[--a-env NAME=VALUE] [--b-env NAME=VALUE] [--comm] [--heads N] [--channels C] [--seq T] [--tolerances fp32|tf32|bf16]\n", argv[0]);
    return 2;
  }
  int a_builtin = 0, b_builtin = 0, precision = GPT2_PRECISION_FP32, comm = 0, heads = 0, channels = 0, seq = 37, tolerances = -1;
  EnvSet env[2];
  memset(env, 0, sizeof env);
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--a-builtin")) a_builtin = 1;
    else if (!strcmp(argv[i], "--b-builtin")) b_builtin = 1;
    else if (!strcmp(argv[i], "--tf32-b")) precision = GPT2_PRECISION_TF32;
    else if (!strcmp(argv[i], "--comm")) comm = 1;
    else if (!strcmp(argv[i], "--heads") && i + 1 < argc) heads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--channels") && i + 1 < argc) channels = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seq") && i + 1 < argc) seq = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--b-precision") && i + 1 < argc) {
      const char* p = argv[++i];
      precision = !strcmp(p, "tf32") ? GPT2_PRECISION_TF32 : !strcmp(p, "bf16") ? GPT2_PRECISION_BF16 : GPT2_PRECISION_FP32;
      if (precision == GPT2_PRECISION_FP32 && strcmp(p, "fp32")) {
        fprintf(stderr, "--b-precision: fp32, tf32 or bf16, not %s\n", p);
        return 2;
      }
    } else if (!strcmp(argv[i], "--tolerances") && i + 1 < argc) {
      const char* p = argv[++i];
      tolerances = !strcmp(p, "fp32") ? GPT2_PRECISION_FP32 : !strcmp(p, "tf32") ? GPT2_PRECISION_TF32 : !strcmp(p, "bf16") ? GPT2_PRECISION_BF16 : -2;
      if (tolerances == -2) {
        fprintf(stderr, "--tolerances: fp32, tf32 or bf16, not %s\n", p);
        return 2;
      }
    } else if ((!strcmp(argv[i], "--a-env") || !strcmp(argv[i], "--b-env")) && i + 1 < argc) {
      env_add(&env[argv[i][2] == 'b'], argv[i + 1]);
      i++;
    } else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const Tolerances* tl = &kTolerances[tolerances >= 0 ? tolerances : precision];
  printf("side B matmuls: %s (tolerances of %s: forward %.0e, loss %.0e, norm %.0e, weights %.1e, AdamW v %.1e, decode %.0e)\n", kTolerances[precision].name, tl->name,
         tl->forward, tl->loss, tl->norm, tl->weights, tl->adam_v, tl->decode);
  for (int s = 0; s < 2; s++)
    for (int i = 0; i < env[s].n; i++) printf("side %c: %s=%s while its model is created\n", "AB"[s], env[s].name[i], env[s].value[i]);
  Engine E[2];
  load(&E[0], argv[1]);
  load(&E[1], argv[2]);
  printf("A: %s\n   %s\nB: %s\n   %s\n", argv[1], E[0].build_info(), argv[2], E[1].build_info());

  /* a small GPT-2 with a padded vocabulary and sizes that are not multiples of any vector width */
  GPT2Config cfg = {.num_layers = 2, .num_heads = 3, .channels = 48, .max_seq_len = 40, .vocab_size = 301,
                    .padded_vocab_size = 320, .ln_eps = 1e-5f};
  /* --heads/--channels: other head sizes (e.g. 1 x 128 reaches the CUDA attention's wide-head kernels) */
  if (heads > 0) cfg.num_heads = heads;
  if (channels > 0) cfg.channels = channels;
  /* --seq: a longer sequence (e.g. 150 spans three of the CUDA attention's 64-row tiles, the last one partial) */
  if (seq < 20) {
    fprintf(stderr, "--seq %d: at least 20 (the KV-cache check decodes 20 positions)\n", seq);
    return 2;
  }
  cfg.max_seq_len = seq + 3;
  if (cfg.channels % cfg.num_heads != 0) {
    fprintf(stderr, "--channels %d is not a multiple of --heads %d\n", cfg.channels, cfg.num_heads);
    return 2;
  }
  printf("config: %d layers, %d heads of %d, T = %d\n", cfg.num_layers, cfg.num_heads, cfg.channels / cfg.num_heads, seq);
  GPT2* M[2];
  for (int s = 0; s < 2; s++) {
    env_apply(&env[s]);
    const int rc = E[s].create(&cfg, &M[s]);
    env_restore(&env[s]);
    ok(&E[s], rc, "create");
    if ((s == 0 && a_builtin) || (s == 1 && b_builtin)) ok(&E[s], E[s].set_gemm(M[s], GPT2_GEMM_BUILTIN), "set_gemm");
    if (s == 1 && precision != GPT2_PRECISION_FP32) ok(&E[s], E[s].set_precision(M[s], precision), "set_precision");
  }
  const size_t P = E[0].num_parameters(M[0]);
  if (E[1].num_parameters(M[1]) != P) {
    fprintf(stderr, "parameter counts differ: %zu vs %zu\n", P, E[1].num_parameters(M[1]));
    return 1;
  }
  float* w = malloc(P * sizeof(float));
  for (size_t i = 0; i < P; i++) w[i] = 0.05f * nrand();
  for (int s = 0; s < 2; s++) ok(&E[s], E[s].write(M[s], GPT2_BUF_PARAMS, 0, w, P), "write");

  const double tol = tl->forward; /* forward values */
  const int B = 3, T = seq, N = B * T, V = cfg.vocab_size;
  int* inp = malloc(N * sizeof(int));
  int* tgt = malloc(N * sizeof(int));
  float* mask = malloc(N * sizeof(float));
  for (int i = 0; i < N; i++) {
    inp[i] = (int)(urand() * V);
    tgt[i] = (int)(urand() * V);
    mask[i] = i % 7 == 3 ? 0.f : 1.f;
  }
  tgt[5] = -1;
  float* out[2];
  for (int s = 0; s < 2; s++) {
    out[s] = malloc((size_t)N * V * sizeof(float));
    ok(&E[s], E[s].logits(M[s], inp, B, T, out[s]), "logits");
  }
  expect_close("logits (B, T, V)", out[1], out[0], (size_t)N * V, tol);
  for (int s = 0; s < 2; s++) ok(&E[s], E[s].token_losses(M[s], inp, tgt, mask, B, T, out[s]), "token_losses");
  expect_close("per-token losses (masked)", out[1], out[0], N, tol);

  /* four AdamW steps of two micro-batches each, clipped at norm 1 */
  for (int step = 1; step <= 4; step++) {
    double loss[2] = {0, 0}, norm[2];
    for (int s = 0; s < 2; s++) ok(&E[s], E[s].zero_grad(M[s]), "zero_grad");
    for (int micro = 0; micro < 2; micro++) {
      for (int i = 0; i < N; i++) {
        inp[i] = (int)(urand() * V);
        tgt[i] = (int)(urand() * V);
      }
      for (int s = 0; s < 2; s++) {
        float l;
        ok(&E[s], E[s].forward_backward(M[s], inp, tgt, micro ? mask : NULL, B, T, 0.5f, &l), "forward_backward");
        loss[s] += 0.5 * l;
      }
    }
    for (int s = 0; s < 2; s++) {
      ok(&E[s], E[s].grad_norm(M[s], &norm[s]), "grad_norm");
      if (norm[s] > 1.0) ok(&E[s], E[s].scale_grads(M[s], (float)(1.0 / (norm[s] + 1e-6))), "scale_grads");
      ok(&E[s], E[s].adamw(M[s], 3e-3, 0.9, 0.95, 1e-8, 0.1, step), "adamw");
    }
    char what[64];
    snprintf(what, sizeof what, "step %d loss", step);
    expect_near(what, loss[1], loss[0], tl->loss);
    snprintf(what, sizeof what, "step %d gradient norm", step);
    expect_near(what, norm[1], norm[0], tl->norm);
  }
  float* pa = malloc(P * sizeof(float));
  float* pb = malloc(P * sizeof(float));
  ok(&E[0], E[0].read(M[0], GPT2_BUF_PARAMS, 0, pa, P), "read");
  ok(&E[1], E[1].read(M[1], GPT2_BUF_PARAMS, 0, pb, P), "read");
  expect_close("weights after 4 steps", pb, pa, P, tl->weights);
  ok(&E[0], E[0].read(M[0], GPT2_BUF_V, 0, pa, P), "read");
  ok(&E[1], E[1].read(M[1], GPT2_BUF_V, 0, pb, P), "read");
  expect_close("AdamW v after 4 steps", pb, pa, P, tl->adam_v);

  /* KV cache on side B: prefill 9 positions of 2 rows, then single steps, against side B's full logits */
  {
    const int R = 2, L = 20, S0 = 9;
    int* seq = malloc(R * L * sizeof(int));
    for (int i = 0; i < R * L; i++) seq[i] = (int)(urand() * V);
    float* full = malloc((size_t)R * L * V * sizeof(float));
    ok(&E[1], E[1].logits(M[1], seq, R, L, full), "logits");
    GPT2Cache* cache;
    ok(&E[1], E[1].cache_create(M[1], R, L, &cache), "cache_create");
    int* tok = malloc(R * L * sizeof(int));
    float* got = malloc((size_t)R * V * sizeof(float));
    float* want = malloc((size_t)R * V * sizeof(float));
    double worst = 0;
    for (int pos = 0; pos < L;) {
      const int S = pos == 0 ? S0 : 1;
      for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++) tok[r * S + s] = seq[r * L + pos + s];
      ok(&E[1], E[1].decode(M[1], cache, tok, S, got), "decode");
      pos += S;
      for (int r = 0; r < R; r++) memcpy(want + (size_t)r * V, full + ((size_t)r * L + pos - 1) * V, V * sizeof(float));
      for (int i = 0; i < R * V; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    }
    int pass = worst < tl->decode;
    failures += !pass;
    printf("%-44s max abs diff %.2e (tolerance %.0e) %s\n", "B: KV-cache decode vs full logits", worst, tl->decode, pass ? "ok" : "FAIL");
    E[1].cache_destroy(cache);
    free(seq), free(full), free(tok), free(got), free(want);
  }
  /* a one-rank communicator of each kind on side B: the mean over one rank is the identity, to the bit */
  if (comm) {
    Engine* e = &E[1];
    if (!e->comm_new_id || !e->comm_create || !e->comm_destroy || !e->allreduce_grads || !e->comm_allreduce_mean) {
      printf("%-44s FAIL (the library has no gpt2_comm_* functions)\n", "B: one-rank communicator");
      failures++;
    } else {
      const char* kinds[] = {"shm", NULL};
      float* g0 = malloc(P * sizeof(float));
      float* g1 = malloc(P * sizeof(float));
      ok(e, e->forward_backward(M[1], inp, tgt, mask, B, T, 1.f, &(float){0}), "forward_backward");
      ok(e, e->read(M[1], GPT2_BUF_GRADS, 0, g0, P), "read");
      for (int k = 0; k < 2; k++) {
        char id[GPT2_COMM_ID_BYTES];
        GPT2Comm* c = NULL;
        ok(e, e->comm_new_id(kinds[k], id), "comm_new_id");
        ok(e, e->comm_create(id, 0, 1, 10000, &c), "comm_create");
        ok(e, e->allreduce_grads(M[1], c), "allreduce_grads");
        double vals[3] = {1.5, -2.25, 1e-300};
        ok(e, e->comm_allreduce_mean(c, vals, 3), "comm_allreduce_mean");
        e->comm_destroy(c);
        ok(e, e->read(M[1], GPT2_BUF_GRADS, 0, g1, P), "read");
        const int same = !memcmp(g0, g1, P * sizeof(float)) && vals[0] == 1.5 && vals[1] == -2.25 && vals[2] == 1e-300;
        failures += !same;
        char what[64];
        const char* colon = strchr(id, ':');
        snprintf(what, sizeof what, "B: one-rank communicator (%s: %.*s)", kinds[k] ? kinds[k] : "default", colon ? (int)(colon - id) : 8, id);
        printf("%-44s gradients and scalars %s %s\n", what, same ? "unchanged" : "CHANGED", same ? "ok" : "FAIL");
      }
      free(g0), free(g1);
    }
  }
  for (int s = 0; s < 2; s++) E[s].destroy(M[s]);
  free(w), free(inp), free(tgt), free(mask), free(out[0]), free(out[1]), free(pa), free(pb);
  printf("%s\n", failures ? "PARITY FAILED" : "parity ok");
  return failures ? 1 : 0;
}

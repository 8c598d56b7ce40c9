// The CPU GPT-2 model: buffers, the training forward/backward, AdamW, evaluation and the KV-cache decode.
// Implements the C API of native/include/gpt2.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "../include/gpt2.h"
#include "../common/comm_shm.h"
#ifdef GPT2_USE_MPI
#include "../common/comm_mpi.h"
#endif
#include "../common/layout.h"
#include "gemm.h"
#include "layers.h"
#include "memory.h"
#include "simd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace gpt2cpu;
using gpt2common::fail;
using gpt2common::check_bt;
using gpt2common::check_ids;
using gpt2common::LayerTensors;
using gpt2common::Tensors;

namespace {

/**
 * Activations of one forward pass, kept for the backward (the table of native/common/layout.h; att holds the
 * softmax rows, (L, B, NH, T, T)). One allocation, sized from (B, T).
 */
struct Activations : gpt2common::ActivationBuffers {
  int layers = 0;  // layers whose activations are kept: L for training; 1 for evaluation (reused per layer)
};

}  // namespace

/** The model: its parameters' layout (sizes, offsets, decay, num_params) and buffers. */
struct GPT2 : gpt2common::ParamLayout {
  GPT2Config cfg;
  Ctx cx;
  float* params = nullptr;  // (num_params)
  float* grads = nullptr;   // (num_params), allocated by the first backward
  float* m = nullptr;       // (num_params) AdamW first moment, allocated by the first update
  float* v = nullptr;       // (num_params) AdamW second moment
  Tensors p;                // views into params
  Tensors g;                // views into grads (valid once grads exists)
  Activations acts;        // training: every layer's activations, for the backward
  Activations eval_acts;   // evaluation without a training buffer big enough: one layer's, reused
  float* scratch = nullptr;  // layer scratch (layer_scratch_floats)
  int scratch_threads = 0;
};

const gpt2common::ParamLayout& gpt2common::layout_of(const GPT2* M) { return *M; }

struct GPT2Cache : gpt2common::CacheShape {
  float* k = nullptr;  // (L, B, NH, max_len, hs)
  float* v = nullptr;  // (L, B, NH, max_len, hs)
  // scratch for S new positions per row, grown on demand
  int cap_S = 0;
  float* x = nullptr;     // (B, S, C) residual stream
  float* ln = nullptr;    // (B, S, C)
  float* qkv = nullptr;   // (B, S, 3C)
  float* atty = nullptr;  // (B, S, C)
  float* fch = nullptr;   // (B, S, 4C)
  float* att = nullptr;   // (threads, max_len) softmax rows
  int att_threads = 0;
  float* last = nullptr;  // (B, C) final positions after ln_f
};

namespace {

Tensors view(const GPT2& M, float* base) { return gpt2common::view(M, M.cfg.num_layers, base); }

/** Sets the OpenMP thread count of this (calling) thread for the model's work. */
void enter(const GPT2* M) {
#ifdef _OPENMP
  omp_set_num_threads(M->cx.threads);
#endif
  (void)M;
}

int ensure_scratch(GPT2* M) {
  if (M->scratch && M->scratch_threads >= M->cx.threads) return GPT2_OK;
  free_floats(M->scratch);
  M->scratch = alloc_floats(layer_scratch_floats(M->cx.threads, M->cfg.channels, M->cfg.max_seq_len));
  M->scratch_threads = M->scratch ? M->cx.threads : 0;
  return M->scratch ? GPT2_OK : fail(GPT2_ERR_MEMORY, "out of memory for the layer scratch");
}

constexpr size_t kActAlign = 16;  // floats: each activation buffer starts 64-byte aligned

/** The floats of the activations for (B, T): every layer's and the backward buffers (training), or one layer's. */
size_t acts_floats(const GPT2* M, int B, int T, bool training, size_t* sizes_out = nullptr);

/**
 * Sizes activations for (B, T); reallocates only when they grow (steady-state steps never allocate). Training
 * keeps every layer's activations for the backward; evaluation keeps one layer's and reuses it layer after layer.
 */
int ensure_acts(GPT2* M, Activations& a, int B, int T, bool training) {
  size_t sizes[gpt2common::kActivationBuffers];
  const size_t total = acts_floats(M, B, T, training, sizes);
  if (total > a.capacity) {
    free_floats(a.mem);
    a.mem = alloc_floats(total);
    if (!a.mem) {
      a.capacity = 0;
      return fail(GPT2_ERR_MEMORY, "out of memory for the activations of B=%d, T=%d (%.1f GB)", B, T, total * 4.0 / 1e9);
    }
    a.capacity = total;
  }
  gpt2common::place_activations(a, a.mem, sizes, kActAlign);
  a.B = B;
  a.T = T;
  a.layers = training ? M->cfg.num_layers : 1;
  return GPT2_OK;
}

int ensure_acts(GPT2* M, int B, int T) { return ensure_acts(M, M->acts, B, T, true); }

/**
 * Activations for an evaluation forward of (B, T): the training ones when they are already big enough (no new
 * memory during a run's val loss), else the one-layer evaluation buffers (a fraction of the memory).
 */
Activations* eval_acts_for(GPT2* M, int B, int T) {
  if (M->acts.mem && M->acts.capacity >= acts_floats(M, B, T, true)) {
    return ensure_acts(M, M->acts, B, T, true) == GPT2_OK ? &M->acts : nullptr;
  }
  return ensure_acts(M, M->eval_acts, B, T, false) == GPT2_OK ? &M->eval_acts : nullptr;
}

size_t acts_floats(const GPT2* M, int B, int T, bool training, size_t* sizes_out) {
  const size_t NH = M->cfg.num_heads;
  gpt2common::ActivationShape shape;
  shape.B = B;
  shape.T = T;
  shape.layers = training ? M->cfg.num_layers : 1;
  shape.att_per_layer = (size_t)B * NH * T * T;  // the softmax rows
  shape.logits_row = M->cfg.vocab_size;
  shape.layer_inputs = true;
  shape.backward = training;
  size_t sizes[gpt2common::kActivationBuffers];
  gpt2common::activation_sizes(M->cfg, shape, sizes);
  if (sizes_out) std::memcpy(sizes_out, sizes, sizeof sizes);
  return gpt2common::aligned_total(sizes, gpt2common::kActivationBuffers, kActAlign);
}

/**
 * The transformer over (B, T) from position 0; ends with lnf (B, T, C). With training activations every layer's
 * are kept; with evaluation ones (a.layers == 1) each layer overwrites the previous one's (layer l reads the
 * residual stream from the slot it then rewrites, only after reading it).
 */
void forward_hidden(GPT2* M, Activations& a, const int* inputs, int B, int T) {
  const Ctx& cx = M->cx;
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads;
  const float eps = M->cfg.ln_eps;
  const int N = B * T;
  const size_t NC = (size_t)N * C;
  const bool keep = a.layers == L;
  encoder_forward(cx, a.encoded, inputs, M->p.wte, M->p.wpe, B, T, C, 0);
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    const size_t k = keep ? (size_t)l : 0;  // the activation slot of this layer
    const float* residual = l == 0 ? a.encoded : a.residual3 + (keep ? (size_t)(l - 1) : 0) * NC;
    float* ln1 = a.ln1 + k * NC;
    float* qkv = a.qkv + k * NC * 3;
    float* atty = a.atty + k * NC;
    float* att = a.att + k * B * NH * T * T;
    float* residual2 = a.residual2 + k * NC;
    float* ln2 = a.ln2 + k * NC;
    float* fch = a.fch + k * NC * 4;
    float* fch_gelu = a.fch_gelu + k * NC * 4;
    float* residual3 = a.residual3 + k * NC;
    layernorm_forward(cx, ln1, a.ln1_mean + k * N, a.ln1_rstd + k * N, residual, w.ln1w, w.ln1b, N, C, eps);
    matmul_forward(cx, qkv, ln1, w.qkvw, w.qkvb, nullptr, N, C, 3 * C);
    attention_forward(cx, atty, att, qkv, B, T, C, NH);
    // residual is last read here (residual2 = residual + proj); only then may residual3 overwrite its slot
    matmul_forward(cx, residual2, atty, w.attprojw, w.attprojb, residual, N, C, C);
    layernorm_forward(cx, ln2, a.ln2_mean + k * N, a.ln2_rstd + k * N, residual2, w.ln2w, w.ln2b, N, C, eps);
    matmul_forward(cx, fch, ln2, w.fcw, w.fcb, nullptr, N, C, 4 * C);
    gelu_forward(cx, fch_gelu, fch, NC * 4);
    matmul_forward(cx, residual3, fch_gelu, w.fcprojw, w.fcprojb, residual2, N, 4 * C, C);
  }
  const float* last = a.residual3 + (keep ? (size_t)(L - 1) : 0) * NC;
  layernorm_forward(cx, a.lnf, a.lnf_mean, a.lnf_rstd, last, M->p.lnfw, M->p.lnfb, N, C, eps);
}

/** logits (N, V) = lnf (N, C) @ wte[:V]^T: the tied head over the real vocabulary only. */
void head_forward(GPT2* M, float* logits, const float* lnf, int N) {
  const int C = M->cfg.channels, V = M->cfg.vocab_size;
  sgemm(M->cx, false, true, N, V, C, 1.f, lnf, C, M->p.wte, C, 0.f, logits, V);
}

/** Backward from dlogits (in acts.logits) down to the embeddings; gradients are added into M->grads. */
void backward(GPT2* M, int B, int T) {
  const Ctx& cx = M->cx;
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, V = M->cfg.vocab_size;
  const int N = B * T;
  const size_t NC = (size_t)N * C;
  Activations& a = M->acts;
  Tensors& g = M->g;
  float* dres = a.dres;
  // head: dlnf (N, C) = dlogits (N, V) @ wte[:V] (V, C); dwte[:V] += dlogits^T @ lnf
  sgemm(cx, false, false, N, C, V, 1.f, a.logits, V, M->p.wte, C, 0.f, a.dbuf_c, C);
  sgemm(cx, true, false, V, C, N, 1.f, a.logits, V, a.lnf, C, 1.f, g.wte, C);
  std::memset(dres, 0, sizeof(float) * NC);
  layernorm_backward(cx, dres, g.lnfw, g.lnfb, a.dbuf_c, a.residual3 + (L - 1) * NC, M->p.lnfw, a.lnf_mean,
                     a.lnf_rstd, N, C);
  for (int l = L - 1; l >= 0; l--) {
    const LayerTensors& w = M->p.layers[l];
    const LayerTensors& dw = g.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    // MLP block: residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))); dres holds d residual3
    matmul_backward(cx, a.dbuf_4c, dw.fcprojw, dw.fcprojb, dres, a.fch_gelu + l * NC * 4, w.fcprojw, N, 4 * C, C);
    gelu_backward(cx, a.dbuf_4c, a.fch + l * NC * 4, NC * 4);
    matmul_backward(cx, a.dbuf_c, dw.fcw, dw.fcb, a.dbuf_4c, a.ln2 + l * NC, w.fcw, N, C, 4 * C);
    layernorm_backward(cx, dres, dw.ln2w, dw.ln2b, a.dbuf_c, a.residual2 + l * NC, w.ln2w, a.ln2_mean + l * N,
                       a.ln2_rstd + l * N, N, C);
    // attention block: residual2 = residual + attproj(attention(c_attn(ln1(residual)))); dres holds d residual2
    matmul_backward(cx, a.dbuf_c, dw.attprojw, dw.attprojb, dres, a.atty + l * NC, w.attprojw, N, C, C);
    attention_backward(cx, a.dbuf_4c, M->scratch, a.dbuf_c, a.qkv + l * NC * 3, a.att + (size_t)l * B * NH * T * T, B, T, C, NH);
    matmul_backward(cx, a.dbuf_c, dw.qkvw, dw.qkvb, a.dbuf_4c, a.ln1 + l * NC, w.qkvw, N, C, 3 * C);
    layernorm_backward(cx, dres, dw.ln1w, dw.ln1b, a.dbuf_c, residual, w.ln1w, a.ln1_mean + l * N,
                       a.ln1_rstd + l * N, N, C);
  }
  encoder_backward(cx, g.wte, g.wpe, dres, a.inputs, B, T, C);
}

/** targets and weights (mask / count) into the activations; returns the count of positions in the loss. */
int prepare_targets(Activations& a, const int* targets, const float* mask, int N) {
  return gpt2common::prepare_targets(targets, mask, N, a.targets, a.weights);
}

}  // namespace

// ---- C API ------------------------------------------------------------------------------------------------------

extern "C" {

const char* gpt2_build_info(void) {
  static char buf[512];
  if (!buf[0]) {
#ifdef _OPENMP
    const char* omp = "OpenMP";
#else
    const char* omp = "no OpenMP (single thread)";
#endif
#if defined(__clang__)
    const char* cc = "clang " __clang_version__;
#elif defined(__GNUC__)
    const char* cc = "gcc " __VERSION__;
#else
    const char* cc = "c++";
#endif
#ifdef GPT2_USE_MPI
    // the library's name and version only (the first line goes on with the package and the date)
    const std::string mpi_line = gpt2mpi::library_version();
    const std::string mpi = mpi_line.substr(0, mpi_line.find(','));
#else
    const std::string mpi = "none";
#endif
    std::snprintf(buf, sizeof buf, "%s, %s, %d-lane SIMD, built-in SGEMM %s, BLAS: %s, MPI: %s", cc, omp, VL, builtin_description(),
                  blas_description(), mpi.c_str());
  }
  return buf;
}

int gpt2_has_blas(void) { return blas_linked() ? 1 : 0; }

int gpt2_create(const GPT2Config* cfg, GPT2** out) {
  if (int rc = gpt2common::check_create(cfg, out)) return rc;
  const GPT2Config& c = *cfg;
  GPT2* M = new (std::nothrow) GPT2();
  if (!M) return fail(GPT2_ERR_MEMORY, "out of memory");
  M->cfg = c;
#ifdef _OPENMP
  M->cx = {blas_linked() ? GemmBackend::Blas : GemmBackend::Builtin, std::max(1, omp_get_max_threads())};
#else
  M->cx = {blas_linked() ? GemmBackend::Blas : GemmBackend::Builtin, 1};
#endif
  gpt2common::init_param_layout(*M, c);
  M->params = alloc_floats(M->num_params);
  if (!M->params) {
    size_t n = M->num_params;
    delete M;
    return fail(GPT2_ERR_MEMORY, "out of memory for %zu parameters", n);
  }
  M->p = view(*M, M->params);
  if (ensure_scratch(M) != GPT2_OK) {
    gpt2_destroy(M);
    return GPT2_ERR_MEMORY;
  }
  *out = M;
  return GPT2_OK;
}

void gpt2_destroy(GPT2* M) {
  if (!M) return;
  free_floats(M->params);
  free_floats(M->grads);
  free_floats(M->m);
  free_floats(M->v);
  free_floats(M->acts.mem);
  free_floats(M->eval_acts.mem);
  free_floats(M->scratch);
  delete M;
}

int gpt2_set_threads(GPT2* M, int threads) {
  if (!M || threads < 1 || threads > 1024) return fail(GPT2_ERR_ARGUMENT, "threads must be between 1 and 1024, got %d", threads);
#ifdef _OPENMP
  M->cx.threads = threads;
#endif
  return ensure_scratch(M);
}

int gpt2_set_gemm(GPT2* M, int gemm) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (gemm == GPT2_GEMM_BLAS) {
    if (!blas_linked()) return fail(GPT2_ERR_ARGUMENT, "this build has no BLAS (it was not found when the engine was built)");
    M->cx.gemm = GemmBackend::Blas;
  } else if (gemm == GPT2_GEMM_BUILTIN) {
    M->cx.gemm = GemmBackend::Builtin;
  } else {
    return fail(GPT2_ERR_ARGUMENT, "unknown GEMM backend %d", gemm);
  }
  return GPT2_OK;
}

int gpt2_set_precision(GPT2* M, int precision) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (precision != GPT2_PRECISION_FP32) return fail(GPT2_ERR_ARGUMENT, "the CPU engine computes in FP32 only (precision %d asked)", precision);
  return GPT2_OK;
}

int gpt2_read(GPT2* M, int which, size_t offset, float* dst, size_t count) {
  if (!M || !dst) return fail(GPT2_ERR_ARGUMENT, "null argument");
  float** slot = nullptr;
  if (int rc = gpt2common::buffer_for(M, which, offset, count, "read", &slot)) return rc;
  if (*slot) std::memcpy(dst, *slot + offset, count * sizeof(float));
  else std::memset(dst, 0, count * sizeof(float));
  return GPT2_OK;
}

static int ensure_buffer(GPT2* M, float** slot, const char* what) {
  if (*slot) return GPT2_OK;
  *slot = alloc_floats(M->num_params);
  if (!*slot) return fail(GPT2_ERR_MEMORY, "out of memory for the %s (%zu floats)", what, M->num_params);
  if (slot == &M->grads) M->g = view(*M, M->grads);
  return GPT2_OK;
}

int gpt2_write(GPT2* M, int which, size_t offset, const float* src, size_t count) {
  if (!M || !src) return fail(GPT2_ERR_ARGUMENT, "null argument");
  float** slot = nullptr;
  if (int rc = gpt2common::buffer_for(M, which, offset, count, "write", &slot)) return rc;
  if (int rc = ensure_buffer(M, slot, "buffer")) return rc;
  std::memcpy(*slot + offset, src, count * sizeof(float));
  return GPT2_OK;
}

int gpt2_forward_backward(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float loss_scale,
                          float* loss) {
  if (!M || !inputs || !targets || !loss) return fail(GPT2_ERR_ARGUMENT, "null argument");
  if (int rc = check_bt(M->cfg, B, T)) return rc;
  const int N = B * T;
  if (int rc = check_ids(M->cfg, inputs, N, false, "inputs")) return rc;
  if (int rc = check_ids(M->cfg, targets, N, true, "targets")) return rc;
  if (int rc = ensure_buffer(M, &M->grads, "gradients")) return rc;
  if (int rc = ensure_acts(M, B, T)) return rc;
  if (M->eval_acts.mem) {  // evaluations use the training activations from now on
    free_floats(M->eval_acts.mem);
    M->eval_acts = Activations();
  }
  enter(M);
  Activations& a = M->acts;
  const int count = prepare_targets(a, targets, mask, N);
  *loss = 0.f;
  if (count == 0) return GPT2_OK;
  std::memcpy(a.inputs, inputs, sizeof(int) * N);
  forward_hidden(M, a, inputs, B, T);
  head_forward(M, a.logits, a.lnf, N);
  const double total = crossentropy(M->cx, a.logits, a.losses, a.targets, a.weights, N, M->cfg.vocab_size, true, loss_scale);
  *loss = (float)total;
  backward(M, B, T);
  return GPT2_OK;
}

int gpt2_zero_grad(GPT2* M) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (M->grads) std::memset(M->grads, 0, M->num_params * sizeof(float));
  return GPT2_OK;
}

int gpt2_grad_norm(GPT2* M, double* norm) {
  if (!M || !norm) return fail(GPT2_ERR_ARGUMENT, "null argument");
  *norm = 0;
  if (!M->grads) return GPT2_OK;
  enter(M);
  // fixed-size chunks summed in order: the result does not depend on the thread count
  const size_t n = M->num_params, chunk = 1 << 16, chunks = (n + chunk - 1) / chunk;
  std::vector<double> part(chunks);
  const float* g = M->grads;
#pragma omp parallel for num_threads(M->cx.threads) schedule(static)
  for (long c = 0; c < (long)chunks; c++) {
    const size_t i0 = c * chunk, i1 = std::min(n, i0 + chunk);
    vfloat acc{};
    size_t i = i0;
    for (; i + VL <= i1; i += VL) {
      const vfloat x = vload(g + i);
      acc += x * x;
    }
    double s = 0;
    for (int j = 0; j < VL; j++) s += acc[j];
    for (; i < i1; i++) s += (double)g[i] * g[i];
    part[c] = s;
  }
  double s = 0;
  for (double x : part) s += x;
  *norm = std::sqrt(s);
  return GPT2_OK;
}

int gpt2_scale_grads(GPT2* M, float factor) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (!M->grads) return GPT2_OK;
  enter(M);
  float* g = M->grads;
#pragma omp parallel for num_threads(M->cx.threads) schedule(static)
  for (long i = 0; i < (long)M->num_params; i++) g[i] *= factor;
  return GPT2_OK;
}

int gpt2_adamw(GPT2* M, double lr, double beta1d, double beta2d, double epsd, double weight_decay, int t) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  gpt2common::AdamWScalars k;
  if (int rc = gpt2common::adamw_scalars(lr, beta1d, beta2d, epsd, weight_decay, t, &k)) return rc;
  if (int rc = ensure_buffer(M, &M->grads, "gradients")) return rc;
  if (int rc = ensure_buffer(M, &M->m, "AdamW m")) return rc;
  if (int rc = ensure_buffer(M, &M->v, "AdamW v")) return rc;
  enter(M);
  const float decay_factor = k.decay_factor, step_size = k.step_size, bc2_sqrt = k.bc2_sqrt;
  const float beta1 = k.beta1, beta2 = k.beta2, eps = k.eps, one_m_b1 = k.one_m_b1, one_m_b2 = k.one_m_b2;
  float* P = M->params;
  float* G = M->grads;
  float* Mo = M->m;
  float* Vo = M->v;
#pragma omp parallel num_threads(M->cx.threads)
  for (size_t ti = 0; ti < M->sizes.size(); ti++) {
    const size_t o = M->offsets[ti], n = M->sizes[ti];
    const bool dec = M->decay[ti] && weight_decay != 0.0;
#pragma omp for schedule(static) nowait
    for (long j = 0; j < (long)n; j++) {
      const size_t i = o + j;
      float p = P[i];
      if (dec) p *= decay_factor;
      const float g = G[i];
      const float m = Mo[i] * beta1 + g * one_m_b1;
      const float v = Vo[i] * beta2 + g * g * one_m_b2;
      const float denom = std::sqrt(v) / bc2_sqrt + eps;
      P[i] = p - step_size * (m / denom);
      Mo[i] = m;
      Vo[i] = v;
    }
  }
  return GPT2_OK;
}

int gpt2_logits(GPT2* M, const int* inputs, int B, int T, float* out) {
  if (!M || !inputs || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  if (int rc = check_bt(M->cfg, B, T)) return rc;
  if (int rc = check_ids(M->cfg, inputs, (size_t)B * T, false, "inputs")) return rc;
  Activations* a = eval_acts_for(M, B, T);
  if (!a) return GPT2_ERR_MEMORY;
  enter(M);
  forward_hidden(M, *a, inputs, B, T);
  head_forward(M, out, a->lnf, B * T);  // straight into the caller's (B, T, V)
  return GPT2_OK;
}

int gpt2_token_losses(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float* out) {
  if (!M || !inputs || !targets || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  if (int rc = check_bt(M->cfg, B, T)) return rc;
  const int N = B * T;
  if (int rc = check_ids(M->cfg, inputs, N, false, "inputs")) return rc;
  if (int rc = check_ids(M->cfg, targets, N, true, "targets")) return rc;
  Activations* ap = eval_acts_for(M, B, T);
  if (!ap) return GPT2_ERR_MEMORY;
  Activations& a = *ap;
  enter(M);
  prepare_targets(a, targets, mask, N);
  forward_hidden(M, a, inputs, B, T);
  head_forward(M, a.logits, a.lnf, N);
  crossentropy(M->cx, a.logits, out, a.targets, a.weights, N, M->cfg.vocab_size, false, 0.f);
  return GPT2_OK;
}

// ---- KV cache -----------------------------------------------------------------------------------------------------

int gpt2_cache_create(GPT2* M, int batch, int max_len, GPT2Cache** out) {
  if (!M || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  *out = nullptr;
  if (int rc = gpt2common::check_cache(M->cfg, batch, max_len)) return rc;
  GPT2Cache* c = new (std::nothrow) GPT2Cache();
  if (!c) return fail(GPT2_ERR_MEMORY, "out of memory");
  gpt2common::init_cache_shape(*c, M->cfg, batch, max_len);
  const size_t n = (size_t)c->L * batch * c->C * max_len;
  c->k = alloc_floats(n);
  c->v = alloc_floats(n);
  c->last = alloc_floats((size_t)batch * c->C);
  if (!c->k || !c->v || !c->last) {
    gpt2_cache_destroy(c);
    return fail(GPT2_ERR_MEMORY, "out of memory for a KV cache of %.1f MB", 2.0 * n * 4 / 1e6);
  }
  *out = c;
  return GPT2_OK;
}

void gpt2_cache_destroy(GPT2Cache* c) {
  if (!c) return;
  for (float* p : {c->k, c->v, c->x, c->ln, c->qkv, c->atty, c->fch, c->att, c->last}) free_floats(p);
  delete c;
}

int gpt2_cache_length(const GPT2Cache* c) { return c ? c->length : 0; }

static int cache_scratch(GPT2Cache* c, int S, int threads) {
  if (S > c->cap_S) {
    const size_t rows = (size_t)c->B * S, C = c->C;
    for (float** p : {&c->x, &c->ln, &c->qkv, &c->atty, &c->fch}) {
      free_floats(*p);
      *p = nullptr;
    }
    c->x = alloc_floats(rows * C);
    c->ln = alloc_floats(rows * C);
    c->qkv = alloc_floats(rows * 3 * C);
    c->atty = alloc_floats(rows * C);
    c->fch = alloc_floats(rows * 4 * C);
    if (!c->x || !c->ln || !c->qkv || !c->atty || !c->fch) {
      c->cap_S = 0;
      return fail(GPT2_ERR_MEMORY, "out of memory for decoding %d positions", S);
    }
    c->cap_S = S;
  }
  if (threads > c->att_threads) {
    free_floats(c->att);
    c->att = alloc_floats((size_t)threads * c->max_len);
    if (!c->att) {
      c->att_threads = 0;
      return fail(GPT2_ERR_MEMORY, "out of memory");
    }
    c->att_threads = threads;
  }
  return GPT2_OK;
}

int gpt2_decode(GPT2* M, GPT2Cache* c, const int* tokens, int S, float* out) {
  if (!M || !c || !tokens || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  if (int rc = gpt2common::check_decode(M->cfg, *c, S)) return rc;
  const int B = c->B, C = c->C, NH = c->NH, hs = c->hs, L = c->L;
  const int N = B * S, pos = c->length, maxLen = c->max_len;
  if (int rc = check_ids(M->cfg, tokens, (size_t)N, false, "tokens")) return rc;
  if (int rc = cache_scratch(c, S, M->cx.threads)) return rc;
  enter(M);
  const Ctx& cx = M->cx;
  const float eps = M->cfg.ln_eps;
  const float scale = 1.f / std::sqrt((float)hs);
  encoder_forward(cx, c->x, tokens, M->p.wte, M->p.wpe, B, S, C, pos);
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    float* K = c->k + (size_t)l * B * NH * maxLen * hs;  // (B, NH, maxLen, hs)
    float* Vc = c->v + (size_t)l * B * NH * maxLen * hs;
    layernorm_forward(cx, c->ln, nullptr, nullptr, c->x, w.ln1w, w.ln1b, N, C, eps);
    matmul_forward(cx, c->qkv, c->ln, w.qkvw, w.qkvb, nullptr, N, C, 3 * C);
    // append the new keys and values at positions pos .. pos+S-1
    for (int b = 0; b < B; b++)
      for (int s = 0; s < S; s++)
        for (int h = 0; h < NH; h++) {
          const float* src = c->qkv + ((size_t)b * S + s) * 3 * C + h * hs;
          const size_t dst = (((size_t)b * NH + h) * maxLen + pos + s) * hs;
          std::memcpy(K + dst, src + C, sizeof(float) * hs);
          std::memcpy(Vc + dst, src + 2 * C, sizeof(float) * hs);
        }
    // query s (absolute position pos + s) attends to keys 0 .. pos + s
#pragma omp parallel num_threads(cx.threads) if ((size_t)B * NH * S * (pos + S) * hs >= (1u << 15))
    {
#ifdef _OPENMP
      float* row = c->att + (size_t)omp_get_thread_num() * maxLen;
#else
      float* row = c->att;
#endif
#pragma omp for collapse(3) schedule(static)
      for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
          for (int s = 0; s < S; s++) {
            const float* q = c->qkv + ((size_t)b * S + s) * 3 * C + h * hs;
            const float* kh = K + ((size_t)b * NH + h) * maxLen * hs;
            const float* vh = Vc + ((size_t)b * NH + h) * maxLen * hs;
            const int n = pos + s + 1;
            float maxv = -INFINITY;
            for (int t2 = 0; t2 < n; t2++) {
              row[t2] = vdot(q, kh + (size_t)t2 * hs, hs) * scale;
              maxv = std::max(maxv, row[t2]);
            }
            float sum = 0.f;
            for (int t2 = 0; t2 < n; t2++) {
              row[t2] = sexp(row[t2] - maxv);
              sum += row[t2];
            }
            const float inv = 1.f / sum;
            float* o = c->atty + ((size_t)b * S + s) * C + h * hs;
            std::memset(o, 0, sizeof(float) * hs);
            for (int t2 = 0; t2 < n; t2++) vaxpy(o, row[t2] * inv, vh + (size_t)t2 * hs, hs);
          }
    }
    matmul_forward(cx, c->x, c->atty, w.attprojw, w.attprojb, c->x, N, C, C);
    layernorm_forward(cx, c->ln, nullptr, nullptr, c->x, w.ln2w, w.ln2b, N, C, eps);
    matmul_forward(cx, c->fch, c->ln, w.fcw, w.fcb, nullptr, N, C, 4 * C);
    gelu_forward(cx, c->fch, c->fch, (size_t)N * 4 * C);
    matmul_forward(cx, c->x, c->fch, w.fcprojw, w.fcprojb, c->x, N, 4 * C, C);
  }
  // ln_f and the head at the last new position of each row only
  for (int b = 0; b < B; b++) std::memcpy(c->ln + (size_t)b * C, c->x + ((size_t)b * S + S - 1) * C, sizeof(float) * C);
  layernorm_forward(cx, c->last, nullptr, nullptr, c->ln, M->p.lnfw, M->p.lnfb, B, C, eps);
  head_forward(M, out, c->last, B);
  c->length += S;
  return GPT2_OK;
}


// ---- data parallel: the shared-memory communicator (one machine), or MPI (machines; built with GPT2_USE_MPI) -------

/** One of the two transports, chosen by the id's prefix ("shm:" or "mpi:"). */
struct GPT2Comm {
  gpt2shm::Comm* shm = nullptr;
#ifdef GPT2_USE_MPI
  gpt2mpi::Comm* mpi = nullptr;
#endif
};

namespace {

const char kNoMpi[] = "this build has no MPI: install libopenmpi-dev (openmpi-bin) and rebuild with npm run build:native";

/** A transport's error as the C API's: its code and message. */
int comm_fail(int rc, const std::string& err) { return fail(rc, "%s", err.c_str()); }

}  // namespace

const char* gpt2_mpi_version(void) {
#ifdef GPT2_USE_MPI
  return gpt2mpi::library_version();
#else
  return nullptr;
#endif
}

int gpt2_comm_new_id(const char* kind, char* id) {
  if (!id) return fail(GPT2_ERR_ARGUMENT, "null argument");
  id[0] = '\0';
  std::string err;
  if (!kind || std::strcmp(kind, "shm") == 0) {
    if (int rc = gpt2shm::new_id(id, GPT2_COMM_ID_BYTES, &err)) return comm_fail(rc, err);
    return GPT2_OK;
  }
  if (std::strcmp(kind, "mpi") == 0) {
#ifdef GPT2_USE_MPI
    if (int rc = gpt2mpi::new_id(id, GPT2_COMM_ID_BYTES, &err)) return comm_fail(rc, err);
    return GPT2_OK;
#else
    return fail(GPT2_ERR_ARGUMENT, "%s", kNoMpi);
#endif
  }
  return fail(GPT2_ERR_ARGUMENT, "the CPU engine's communicators are \"shm\" (one machine) and \"mpi\", not \"%s\"", kind);
}

int gpt2_comm_create(const char* id, int rank, int world, int timeout_ms, GPT2Comm** out) {
  if (!id || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  *out = nullptr;
  std::string err;
  if (std::strncmp(id, "mpi:", 4) == 0) {
#ifdef GPT2_USE_MPI
    gpt2mpi::Comm* c = nullptr;
    if (int rc = gpt2mpi::create(id, rank, world, timeout_ms, &c, &err)) return comm_fail(rc, err);
    GPT2Comm* g = new GPT2Comm();
    g->mpi = c;
    *out = g;
    return GPT2_OK;
#else
    return fail(GPT2_ERR_ARGUMENT, "%s", kNoMpi);
#endif
  }
  gpt2shm::Comm* c = nullptr;
  if (int rc = gpt2shm::create(id, rank, world, timeout_ms, &c, &err)) return comm_fail(rc, err);
  GPT2Comm* g = new GPT2Comm();
  g->shm = c;
  *out = g;
  return GPT2_OK;
}

void gpt2_comm_abort(GPT2Comm* comm) {
  if (!comm) return;
  if (comm->shm) gpt2shm::abort(comm->shm);
#ifdef GPT2_USE_MPI
  if (comm->mpi) gpt2mpi::abort(comm->mpi);
#endif
}

void gpt2_comm_destroy(GPT2Comm* comm) {
  if (!comm) return;
  if (comm->shm) gpt2shm::destroy(comm->shm);
#ifdef GPT2_USE_MPI
  if (comm->mpi) gpt2mpi::destroy(comm->mpi);
#endif
  delete comm;
}

/** data[0..n) = the mean over the ranks, through the communicator's transport. */
static int comm_allreduce_floats(GPT2Comm* comm, float* data, size_t n) {
  std::string err;
  int rc;
#ifdef GPT2_USE_MPI
  if (comm->mpi) rc = gpt2mpi::allreduce_mean(comm->mpi, data, n, &err);
  else
#endif
    rc = gpt2shm::allreduce_mean(comm->shm, data, n, &err);
  return rc ? comm_fail(rc, err) : GPT2_OK;
}

int gpt2_allreduce_grads(GPT2* M, GPT2Comm* comm) {
  if (!M || !comm) return fail(GPT2_ERR_ARGUMENT, "null argument");
  // a rank whose micro-batches had no counted position has no gradient buffer yet: it takes part with zeros
  if (int rc = ensure_buffer(M, &M->grads, "gradients")) return rc;
  return comm_allreduce_floats(comm, M->grads, M->num_params);
}

int gpt2_comm_allreduce_mean(GPT2Comm* comm, double* values, int n) {
  if (!comm || (!values && n > 0)) return fail(GPT2_ERR_ARGUMENT, "null argument");
  std::string err;
  int rc;
#ifdef GPT2_USE_MPI
  if (comm->mpi) rc = gpt2mpi::allreduce_mean_f64(comm->mpi, values, n, &err);
  else
#endif
    rc = gpt2shm::allreduce_mean_f64(comm->shm, values, n, &err);
  return rc ? comm_fail(rc, err) : GPT2_OK;
}

int gpt2_comm_broadcast(GPT2Comm* comm, float* data, size_t n) {
  if (!comm || (!data && n > 0)) return fail(GPT2_ERR_ARGUMENT, "null argument");
  std::string err;
  int rc;
#ifdef GPT2_USE_MPI
  if (comm->mpi) rc = gpt2mpi::broadcast(comm->mpi, data, n, &err);
  else
#endif
    rc = gpt2shm::broadcast(comm->shm, data, n, &err);
  return rc ? comm_fail(rc, err) : GPT2_OK;
}

}  // extern "C"

// The host-side bookkeeping that both engines share (native/cpu/model.cpp and native/cuda/gpt2_cuda.cu): the error
// message of the C API, the parameters' layout and the views of each tensor in a parameter-shaped buffer, the table
// of the activations, the checks of the arguments, the loss targets and weights, and AdamW's scalars. Both engines
// link layout.cpp. See native/README.md ("Layout and numerics").
#ifndef GPT2_COMMON_LAYOUT_H
#define GPT2_COMMON_LAYOUT_H

#include <cstddef>
#include <vector>

#include "../include/gpt2.h"

namespace gpt2common {

// ---- errors -------------------------------------------------------------------------------------------------------

/** Records the message of a failed call for gpt2_last_error (per thread) and returns code. */
int fail(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
/** The message of the last failed call on this thread ("" if none); gpt2_last_error returns it. */
const char* last_error();

// ---- parameters ---------------------------------------------------------------------------------------------------

constexpr int kPerLayer = 12;  // tensors per transformer layer

/** The tensors of a model, in paramSpecs order: each one's element count, element offset and weight decay. */
struct ParamLayout {
  std::vector<size_t> sizes;    // element count of each tensor
  std::vector<size_t> offsets;  // element offset of each tensor
  std::vector<char> decay;      // weight decay applies (rank >= 2)
  size_t num_params = 0;
};

/** Pointers to one layer's tensors inside a parameter-shaped buffer (params, grads, m or v). */
struct LayerTensors {
  float* ln1w;      // (C)
  float* ln1b;      // (C)
  float* qkvw;      // (3C, C)   attn.c_attn.weight
  float* qkvb;      // (3C)
  float* attprojw;  // (C, C)    attn.c_proj.weight
  float* attprojb;  // (C)
  float* ln2w;      // (C)
  float* ln2b;      // (C)
  float* fcw;       // (4C, C)   mlp.c_fc.weight
  float* fcb;       // (4C)
  float* fcprojw;   // (C, 4C)   mlp.c_proj.weight
  float* fcprojb;   // (C)
};

/** Every tensor inside a parameter-shaped buffer, in paramSpecs order. */
struct Tensors {
  float* wte;  // (Vp, C)
  float* wpe;  // (maxT, C)
  std::vector<LayerTensors> layers;
  float* lnfw;  // (C)
  float* lnfb;  // (C)
};

/**
 * A model's layout: each engine's GPT2 is a ParamLayout, and each engine defines this. layout.cpp answers the C API's
 * gpt2_num_tensors, gpt2_tensor_numel and gpt2_num_parameters with it.
 */
const ParamLayout& layout_of(const GPT2* model);

/** gpt2_create's checks: non-null arguments (*out is cleared) and a consistent config. */
int check_create(const GPT2Config* cfg, GPT2** out);
/** The layout of a checked config: wte, wpe, then per layer ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, then ln_f. */
void init_param_layout(ParamLayout& layout, const GPT2Config& cfg);
/** The tensors inside the parameter-shaped buffer at base. */
Tensors view(const ParamLayout& layout, int num_layers, float* base);

/** gpt2_read's and gpt2_write's check of a range: count floats at offset lie inside the parameters. */
int check_range(const ParamLayout& layout, size_t offset, size_t count, const char* what);

/**
 * The buffer that gpt2_read and gpt2_write address (`which`: GPT2_BUF_*) among a model's parameter-shaped buffers
 * (its members params, grads, m and v), after the checks of `which` and of the range; *slot points at the member.
 */
template <class Model>
int buffer_for(Model* M, int which, size_t offset, size_t count, const char* what, float*** slot) {
  *slot = which == GPT2_BUF_PARAMS ? &M->params : which == GPT2_BUF_GRADS ? &M->grads : which == GPT2_BUF_M ? &M->m
        : which == GPT2_BUF_V ? &M->v : nullptr;
  if (!*slot) return fail(GPT2_ERR_ARGUMENT, "unknown buffer %d", which);
  return check_range(*M, offset, count, what);
}

// ---- activations --------------------------------------------------------------------------------------------------

/** The activations of one forward over (B, T) that both engines keep, in the order of their one allocation. */
struct ActivationBuffers {
  int B = 0, T = 0;            // the batch shape they are laid out for
  size_t capacity = 0;         // floats allocated
  float* mem = nullptr;        // the allocation
  float* encoded = nullptr;    // (B, T, C)
  float* ln1 = nullptr;        // (L, B, T, C)
  float* ln1_mean = nullptr;   // (L, B, T)
  float* ln1_rstd = nullptr;   // (L, B, T)
  float* qkv = nullptr;        // (L, B, T, 3C)
  float* atty = nullptr;       // (L, B, T, C)   attention output before c_proj
  float* att = nullptr;        // (L, ...)       what the attention keeps for its backward (per engine)
  float* residual2 = nullptr;  // (L, B, T, C)   after the attention block
  float* ln2 = nullptr;        // (L, B, T, C)
  float* ln2_mean = nullptr;   // (L, B, T)
  float* ln2_rstd = nullptr;   // (L, B, T)
  float* fch = nullptr;        // (L, B, T, 4C)  c_fc output (GELU input)
  float* fch_gelu = nullptr;   // (L, B, T, 4C)
  float* residual3 = nullptr;  // (L, B, T, C)   after the MLP block
  float* lnf = nullptr;        // (B, T, C)
  float* lnf_mean = nullptr;   // (B, T)
  float* lnf_rstd = nullptr;   // (B, T)
  float* logits = nullptr;     // (B, T, V), rows `logits_row` floats apart; the logits' gradient in place after the loss
  float* losses = nullptr;     // (B, T)
  float* weights = nullptr;    // (B, T)          loss weight per position: mask / count
  int* targets = nullptr;      // (B, T)
  int* inputs = nullptr;       // (B, T)          kept for the encoder backward
  float* dres = nullptr;       // (B, T, C)       backward: gradient of the residual stream
  float* dbuf_c = nullptr;     // (B, T, C)       backward: gradient of a layernorm output / of atty
  float* dbuf_4c = nullptr;    // (B, T, 4C)      backward: gradient of fch, or of qkv (3C)
};
constexpr int kActivationBuffers = 25;

/** What sizes the activations' table. */
struct ActivationShape {
  int B, T;
  size_t layers;         // layers whose activations are kept: L for training, 1 for an evaluation that reuses them
  size_t att_per_layer;  // floats the attention keeps per layer
  size_t logits_row;     // floats per row of logits (>= V)
  bool layer_inputs;     // ln1, ln2 and fch_gelu in FP32 (the CUDA engine's BF16 keeps them in bf16 only)
  bool backward;         // dres, dbuf_c and dbuf_4c
};

/** The floats of each buffer of ActivationBuffers, in its order (kActivationBuffers entries). */
void activation_sizes(const GPT2Config& cfg, const ActivationShape& shape, size_t* sizes);
/** The floats of n buffers, each rounded up to a multiple of `align` floats. */
size_t aligned_total(const size_t* sizes, int n, size_t align);
/** Points the buffers of `a` into mem one after another, each rounded up to `align` floats; returns the end. */
float* place_activations(ActivationBuffers& a, float* mem, const size_t* sizes, size_t align);

// ---- batches ------------------------------------------------------------------------------------------------------

/** The token ids in ids[0..n) are in the vocabulary (negative ones allowed for targets). */
int check_ids(const GPT2Config& cfg, const int* ids, size_t n, bool allow_negative, const char* what);
/** A batch shape (B, T) that the model can take. */
int check_bt(const GPT2Config& cfg, int B, int T);
/**
 * The loss targets (-1 where a position does not count) and weights (mask / count) of N positions; returns the
 * count. A position counts when its target is >= 0 and its mask (if any) is not 0.
 */
int prepare_targets(const int* targets, const float* mask, int N, int* out_targets, float* out_weights);

// ---- KV cache -----------------------------------------------------------------------------------------------------

/** The shape and fill of a KV cache. */
struct CacheShape {
  int B = 0, max_len = 0, length = 0;
  int L = 0, NH = 0, hs = 0, C = 0;
};
/** gpt2_cache_create's checks of batch and max_len. */
int check_cache(const GPT2Config& cfg, int batch, int max_len);
void init_cache_shape(CacheShape& c, const GPT2Config& cfg, int batch, int max_len);
/** gpt2_decode's checks: the cache is this model's, and it has room for S more positions. */
int check_decode(const GPT2Config& cfg, const CacheShape& c, int S);

// ---- AdamW --------------------------------------------------------------------------------------------------------

/** AdamW's scalars as torch.optim.AdamW forms them (Python floats, so in double), then used in float32. */
struct AdamWScalars {
  float decay_factor, step_size, bc2_sqrt;
  float beta1, beta2, one_m_b1, one_m_b2, eps;
};
/** The scalars of step t (1-based; a smaller t is refused). */
int adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay, int t, AdamWScalars* out);

}  // namespace gpt2common

#endif

// The host-side bookkeeping of native/common/layout.h, and the C API functions that are the same in both engines:
// gpt2_last_error and the layout's gpt2_num_tensors, gpt2_tensor_numel and gpt2_num_parameters.
#include "layout.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <string>

namespace gpt2common {
namespace {

thread_local std::string tl_error;

}  // namespace

int fail(int code, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  tl_error = buf;
  return code;
}

const char* last_error() { return tl_error.c_str(); }

// ---- parameters ---------------------------------------------------------------------------------------------------

int check_create(const GPT2Config* cfg, GPT2** out) {
  if (!cfg || !out) return fail(GPT2_ERR_ARGUMENT, "gpt2_create: null argument");
  *out = nullptr;
  const GPT2Config& c = *cfg;
  if (c.num_layers <= 0 || c.num_heads <= 0 || c.channels <= 0 || c.max_seq_len <= 0 || c.vocab_size <= 0 ||
      c.padded_vocab_size < c.vocab_size || c.channels % c.num_heads != 0 || !(c.ln_eps > 0))
    return fail(GPT2_ERR_ARGUMENT, "bad config: L=%d NH=%d C=%d maxT=%d V=%d Vp=%d eps=%g", c.num_layers, c.num_heads,
                c.channels, c.max_seq_len, c.vocab_size, c.padded_vocab_size, (double)c.ln_eps);
  return GPT2_OK;
}

void init_param_layout(ParamLayout& p, const GPT2Config& c) {
  p = ParamLayout();
  const size_t C = c.channels;
  auto add = [&](size_t n, bool decay) {
    p.offsets.push_back(p.num_params);
    p.sizes.push_back(n);
    p.decay.push_back(decay);
    p.num_params += n;
  };
  add((size_t)c.padded_vocab_size * C, true);  // wte
  add((size_t)c.max_seq_len * C, true);        // wpe
  for (int l = 0; l < c.num_layers; l++) {
    add(C, false); add(C, false);                  // ln_1
    add(3 * C * C, true); add(3 * C, false);       // attn.c_attn
    add(C * C, true); add(C, false);               // attn.c_proj
    add(C, false); add(C, false);                  // ln_2
    add(4 * C * C, true); add(4 * C, false);       // mlp.c_fc
    add(4 * C * C, true); add(C, false);           // mlp.c_proj
  }
  add(C, false); add(C, false);  // ln_f
}

Tensors view(const ParamLayout& p, int num_layers, float* base) {
  Tensors t;
  auto at = [&](size_t i) { return base + p.offsets[i]; };
  t.wte = at(0);
  t.wpe = at(1);
  t.layers.resize(num_layers);
  for (int l = 0; l < num_layers; l++) {
    const size_t o = 2 + (size_t)l * kPerLayer;
    LayerTensors& x = t.layers[l];
    x.ln1w = at(o + 0); x.ln1b = at(o + 1);
    x.qkvw = at(o + 2); x.qkvb = at(o + 3);
    x.attprojw = at(o + 4); x.attprojb = at(o + 5);
    x.ln2w = at(o + 6); x.ln2b = at(o + 7);
    x.fcw = at(o + 8); x.fcb = at(o + 9);
    x.fcprojw = at(o + 10); x.fcprojb = at(o + 11);
  }
  const size_t f = 2 + (size_t)num_layers * kPerLayer;
  t.lnfw = at(f);
  t.lnfb = at(f + 1);
  return t;
}

int check_range(const ParamLayout& p, size_t offset, size_t count, const char* what) {
  if (offset > p.num_params || count > p.num_params - offset)
    return fail(GPT2_ERR_ARGUMENT, "%s of %zu floats at %zu is past the %zu parameters", what, count, offset, p.num_params);
  return GPT2_OK;
}

// ---- activations --------------------------------------------------------------------------------------------------

void activation_sizes(const GPT2Config& cfg, const ActivationShape& s, size_t* sizes) {
  const size_t L = s.layers, C = cfg.channels, BT = (size_t)s.B * s.T;
  const size_t X = s.layer_inputs ? 1 : 0;  // ln1, ln2, fch_gelu
  const size_t D = s.backward ? 1 : 0;      // the backward's buffers
  const size_t table[] = {
      BT * C,                                   // encoded
      X * L * BT * C, L * BT, L * BT,           // ln1, mean, rstd
      L * BT * 3 * C, L * BT * C,               // qkv, atty
      L * s.att_per_layer,                      // att
      L * BT * C,                               // residual2
      X * L * BT * C, L * BT, L * BT,           // ln2, mean, rstd
      L * BT * 4 * C, X * L * BT * 4 * C,       // fch, fch_gelu
      L * BT * C,                               // residual3
      BT * C, BT, BT,                           // lnf, mean, rstd
      BT * s.logits_row, BT, BT, BT, BT,        // logits, losses, weights, targets, inputs
      D * BT * C, D * BT * C, D * BT * 4 * C,   // dres, dbuf_c, dbuf_4c
  };
  static_assert(sizeof table / sizeof table[0] == kActivationBuffers, "one size per buffer");
  for (int i = 0; i < kActivationBuffers; i++) sizes[i] = table[i];
}

size_t aligned_total(const size_t* sizes, int n, size_t align) {
  size_t total = 0;
  for (int i = 0; i < n; i++) total += (sizes[i] + align - 1) / align * align;
  return total;
}

float* place_activations(ActivationBuffers& a, float* mem, const size_t* sizes, size_t align) {
  float* p = mem;
  int i = 0;
  auto take = [&]() {
    float* r = p;
    p += (sizes[i++] + align - 1) / align * align;
    return r;
  };
  a.encoded = take();
  a.ln1 = take(); a.ln1_mean = take(); a.ln1_rstd = take();
  a.qkv = take(); a.atty = take();
  a.att = take();
  a.residual2 = take();
  a.ln2 = take(); a.ln2_mean = take(); a.ln2_rstd = take();
  a.fch = take(); a.fch_gelu = take();
  a.residual3 = take();
  a.lnf = take(); a.lnf_mean = take(); a.lnf_rstd = take();
  a.logits = take(); a.losses = take(); a.weights = take();
  a.targets = reinterpret_cast<int*>(take());
  a.inputs = reinterpret_cast<int*>(take());
  a.dres = take(); a.dbuf_c = take(); a.dbuf_4c = take();
  return p;
}

// ---- batches ------------------------------------------------------------------------------------------------------

int check_ids(const GPT2Config& cfg, const int* ids, size_t n, bool allow_negative, const char* what) {
  const int V = cfg.vocab_size;
  for (size_t i = 0; i < n; i++) {
    const int t = ids[i];
    if (t >= V || (t < 0 && !allow_negative))
      return fail(GPT2_ERR_ARGUMENT, "token id %d at %s[%zu] is outside the vocabulary (0..%d)", t, what, i, V - 1);
  }
  return GPT2_OK;
}

int check_bt(const GPT2Config& cfg, int B, int T) {
  if (B <= 0 || T <= 0) return fail(GPT2_ERR_ARGUMENT, "batch shape B=%d, T=%d must be positive", B, T);
  if (T > cfg.max_seq_len)
    return fail(GPT2_ERR_ARGUMENT, "sequence length %d exceeds the model's context of %d positions", T, cfg.max_seq_len);
  return GPT2_OK;
}

int prepare_targets(const int* targets, const float* mask, int N, int* out_targets, float* out_weights) {
  int count = 0;
  for (int i = 0; i < N; i++) {
    const bool on = targets && targets[i] >= 0 && (!mask || mask[i] != 0.f);
    out_targets[i] = on ? targets[i] : -1;
    out_weights[i] = on ? 1.f : 0.f;
    count += on;
  }
  if (count > 0)
    for (int i = 0; i < N; i++) out_weights[i] /= (float)count;
  return count;
}

// ---- KV cache -----------------------------------------------------------------------------------------------------

int check_cache(const GPT2Config& cfg, int batch, int max_len) {
  if (batch <= 0 || max_len <= 0 || max_len > cfg.max_seq_len)
    return fail(GPT2_ERR_ARGUMENT, "KV cache of %d rows x %d positions: rows must be > 0 and positions in 1..%d", batch, max_len,
                cfg.max_seq_len);
  return GPT2_OK;
}

void init_cache_shape(CacheShape& c, const GPT2Config& cfg, int batch, int max_len) {
  c.B = batch;
  c.max_len = max_len;
  c.length = 0;
  c.L = cfg.num_layers;
  c.NH = cfg.num_heads;
  c.C = cfg.channels;
  c.hs = c.C / c.NH;
}

int check_decode(const GPT2Config& cfg, const CacheShape& c, int S) {
  if (c.C != cfg.channels || c.L != cfg.num_layers) return fail(GPT2_ERR_ARGUMENT, "the cache belongs to another model");
  if (S <= 0) return fail(GPT2_ERR_ARGUMENT, "decode needs at least one position, got %d", S);
  if (c.length + S > c.max_len)
    return fail(GPT2_ERR_STATE, "the KV cache holds %d positions; %d are used and %d more were fed", c.max_len, c.length, S);
  return GPT2_OK;
}

// ---- AdamW --------------------------------------------------------------------------------------------------------

int adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay, int t, AdamWScalars* out) {
  if (t < 1) return fail(GPT2_ERR_ARGUMENT, "AdamW step number must be >= 1, got %d", t);
  out->decay_factor = (float)(1.0 - lr * weight_decay);
  out->step_size = (float)(lr / (1.0 - std::pow(beta1, t)));
  out->bc2_sqrt = (float)std::sqrt(1.0 - std::pow(beta2, t));
  out->beta1 = (float)beta1;
  out->beta2 = (float)beta2;
  out->one_m_b1 = (float)(1.0 - beta1);
  out->one_m_b2 = (float)(1.0 - beta2);
  out->eps = (float)eps;
  return GPT2_OK;
}

}  // namespace gpt2common

extern "C" {

const char* gpt2_last_error(void) { return gpt2common::last_error(); }

int gpt2_num_tensors(const GPT2* M) { return M ? (int)gpt2common::layout_of(M).sizes.size() : 0; }

size_t gpt2_tensor_numel(const GPT2* M, int i) {
  if (!M) return 0;
  const gpt2common::ParamLayout& p = gpt2common::layout_of(M);
  return i >= 0 && i < (int)p.sizes.size() ? p.sizes[i] : 0;
}

size_t gpt2_num_parameters(const GPT2* M) { return M ? gpt2common::layout_of(M).num_params : 0; }

}  // extern "C"

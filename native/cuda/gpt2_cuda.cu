// The CUDA GPT-2 engine: the C API of native/include/gpt2.h on one GPU, in the layout and numerics of the CPU
// engine (native/cpu/model.cpp), whose structure it follows function for function. This file is the model (its
// buffers, the forward and backward passes, the C API) and the one translation unit of the engine: it includes the
// layers and the rest, one file each, in the way llm.c splits its CUDA engine (native/README.md lists them):
//   common.cuh           error checks, launch sizes, reductions, helpers
//   profile.cuh          GPT2_CUDA_PROFILE=1: GPU time per section of the step
//   encoder.cuh, layernorm.cuh, gelu.cuh, crossentropy.cuh (the fused classifier), adamw.cuh (with the global norm)
//   matmul.cuh           cuBLAS in FP32, TF32 or BF16, the biases, the parameters' bf16 mirror
//   attention_flash.cuh  the fused flash-style attention in FP32 (the default)
//   attention_tc.cuh     the same on tensor cores (BF16, heads of 64)
//   attention_naive.cuh  GPT2_CUDA_ATTENTION=naive: batched SGEMM around a stored causal softmax
//   attention_decode.cuh the KV-cache decode's attention
//   comm.cuh             data parallel over NCCL or shared memory
//   devices.cuh          each GPU's free memory before any model exists
// The host-side bookkeeping that both engines share (parameter layout, activation table, checks) is in
// native/common/layout.h.
//
// - Matmuls: cuBLAS, FP32 (SGEMM), TF32 tensor cores, or BF16 (gpt2_set_precision): BF16 runs cublasGemmEx with
//   bf16 A and B and FP32 accumulation and output; the weights come from a bf16 mirror of the parameters, refreshed
//   lazily after every change (gpt2_write, gpt2_adamw), and every other operand is rounded into a scratch buffer just
//   before its GEMM. Master weights, gradients and AdamW state stay FP32 in every mode.
// - Attention (training and evaluation): a fused flash-style kernel by default. The forward is an online softmax over
//   32-key tiles that keeps only the per-row logsumexp (B, NH, T); the backward recomputes the probabilities from q,
//   k and that logsumexp, with D = rowsum(dO * O) precomputed, in two kernels (dK and dV per key tile, dQ per query
//   tile), so no atomics and no (T, T) rows. FP32 math, except in BF16 with heads of 64 (every GPT-2 size): there the
//   same algorithm runs its products on tensor cores (wmma, bf16 operands, FP32 accumulators and softmax) in 64-row
//   tiles; GPT2_CUDA_ATTENTION=flash32 keeps the FP32 kernels. GPT2_CUDA_ATTENTION=naive (read at gpt2_create)
//   selects the first version instead: q, k, v permuted to (B, NH, T, hs), scores and the weighted sum by
//   strided-batched SGEMM (TF32 in TF32 and BF16) around a causal softmax kernel, the softmax rows (B, NH, T, T) of
//   every layer kept.
// - Everything else: one kernel per layer function (encoder, layernorm, GELU, cross-entropy with its gradient,
//   AdamW, norm); the residual adds and the biases are folded into the GEMMs (bias prefill, beta = 1), FP32.
// - Data parallel: gpt2_comm_* and gpt2_allreduce_grads over NCCL (built with -DGPT2_USE_NCCL; "nccl:" ids) or over
//   the shared-memory communicator of native/common/comm_shm.h ("shm:" ids, staging the gradients through the host).
// - Devices: gpt2_device_count and gpt2_device_info report each GPU's free memory before any model exists (the
//   studio checks a run's memory plan against it), and give back the context that the question made.
//
// The kernels run on the legacy default stream of the model's device (recorded at gpt2_create: the device that
// gpt2_comm_create selected, when it ran first on the thread); every API call selects that device again.
// native/test/gpu/gpu-check.sh checks this engine against the CPU engine on a GPU machine; native/test/emu runs it on
// the CPU (test/cuda-emulated.test.ts).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "../common/layout.h"
#include "../include/gpt2.h"
#include "common.cuh"
#include "profile.cuh"
#include "encoder.cuh"
#include "layernorm.cuh"
#include "matmul.cuh"
#include "gelu.cuh"
#include "attention_naive.cuh"
#include "attention_flash.cuh"
#include "attention_tc.cuh"
#include "attention_decode.cuh"
#include "crossentropy.cuh"
#include "adamw.cuh"
#include "comm.cuh"
#include "devices.cuh"

// ---- model -------------------------------------------------------------------------------------------------------

namespace {

/**
 * Device activations of one training forward, sized from (B, T): the table of native/common/layout.h, with att
 * naive: (L, B, NH, T, T) softmax rows; flash: (L, B, NH, T) the logsumexp of each row; and logits (B, T, V) in rows
 * of Vp floats, so that every row is aligned for the GEMMs. BF16 keeps the inputs of the GEMMs that are made by a
 * layernorm or GELU only in bf16 (the *16 buffers); their FP32 forms (ln1, ln2, fch_gelu) are then null. The bf16
 * forms serve the forward GEMM and the weight-gradient GEMM.
 */
struct Activations : gpt2common::ActivationBuffers {
  // the forward-backward's logits gradient: in place in `logits`, or in BF16 as bf16 in scratch slot 0 (same layout)
  const __nv_bfloat16* dlogits16 = nullptr;
  float* q = nullptr;     // (B, NH, T, hs)  naive attention scratch (one layer); empty with flash
  float* k = nullptr;     // (B, NH, T, hs)
  float* v = nullptr;     // (B, NH, T, hs)
  float* y = nullptr;     // (B, NH, T, hs)
  float* datt = nullptr;  // naive: (B, NH, T, T); flash: (B, NH, T) the rows' D = sum(dO * O)
  __nv_bfloat16* ln1_16 = nullptr;   // BF16 only: (L, B, T, C)
  __nv_bfloat16* atty16 = nullptr;   // (L, B, T, C), rounded from atty
  __nv_bfloat16* ln2_16 = nullptr;   // (L, B, T, C)
  __nv_bfloat16* fchg16 = nullptr;   // (L, B, T, 4C)
  __nv_bfloat16* lnf16 = nullptr;    // (B, T, C), besides lnf
};

constexpr size_t kActAlign = 64;  // floats: each activation buffer starts 256-byte aligned

}  // namespace

/** The model: its parameters' layout (sizes, offsets, decay, num_params) and its device buffers. */
struct GPT2 : gpt2common::ParamLayout {
  GPT2Config cfg;
  int device = 0;  // the CUDA device it lives on (current at gpt2_create)
  Blas blas;       // cuBLAS, the precision, and BF16's mirror of the parameters
  bool flash = true;  // fused attention; false: GPT2_CUDA_ATTENTION=naive
  bool flash32 = false;  // GPT2_CUDA_ATTENTION=flash32: the FP32 fused kernels even in BF16
  float* params = nullptr;  // device (num_params)
  float* grads = nullptr;   // device, from the first backward
  float* m = nullptr;       // device, from the first update
  float* v = nullptr;
  Tensors p, g;
  Activations acts;
  double* partials = nullptr;  // device (kNormBlocks)
  std::vector<float> host_losses, host_weights;
  std::vector<int> host_targets;
  Profile prof;  // GPT2_CUDA_PROFILE=1 (read at gpt2_create)
};

const gpt2common::ParamLayout& gpt2common::layout_of(const GPT2* M) { return *M; }

struct GPT2Cache : gpt2common::CacheShape {
  int device = 0;
  float* k = nullptr;  // device (L, B, NH, max_len, hs)
  float* v = nullptr;
  int cap_S = 0;
  float* x = nullptr;     // (B, S, C)
  float* ln = nullptr;    // (B, S, C)
  float* qkv = nullptr;   // (B, S, 3C)
  float* atty = nullptr;  // (B, S, C)
  float* fch = nullptr;   // (B, S, 4C)
  int* tokens = nullptr;  // (B, S)
  float* last = nullptr;  // (B, C)
  float* lastln = nullptr;  // (B, C)
  float* out = nullptr;   // (B, V)
};

namespace {

Tensors view(const GPT2& M, float* base) { return gpt2common::view(M, M.cfg.num_layers, base); }

/** Floats per layer of what the attention forward keeps for the backward (Activations::att). */
size_t saved_per_layer(const GPT2* M, int B, int T) {
  return (size_t)B * M->cfg.num_heads * T * (M->flash ? 1 : (size_t)T);
}

int ensure_acts(GPT2* M, int B, int T) {
  Activations& a = M->acts;
  const size_t L = M->cfg.num_layers, C = M->cfg.channels;
  const size_t BT = (size_t)B * T;
  const bool naive = !M->flash, bf16 = M->blas.precision == GPT2_PRECISION_BF16;
  gpt2common::ActivationShape shape;
  shape.B = B;
  shape.T = T;
  shape.layers = L;
  shape.att_per_layer = saved_per_layer(M, B, T);  // per layer: softmax rows, or logsumexp
  shape.logits_row = M->cfg.padded_vocab_size;
  shape.layer_inputs = !bf16;
  shape.backward = true;
  constexpr int kBase = gpt2common::kActivationBuffers, kMore = 10;
  size_t sizes[kBase + kMore];
  gpt2common::activation_sizes(M->cfg, shape, sizes);
  const size_t scratch = naive ? BT * C : 0;  // q, k, v, y of the naive attention
  const size_t h16 = bf16 ? 1 : 0;            // the BF16-only buffers
  auto in_floats = [](size_t n16) { return (n16 * sizeof(__nv_bfloat16) + sizeof(float) - 1) / sizeof(float); };
  const size_t more[kMore] = {
      scratch, scratch, scratch, scratch, shape.att_per_layer,  // q, k, v, y, datt (flash: the rows' D)
      h16 * in_floats(L * BT * C), h16 * in_floats(L * BT * C), h16 * in_floats(L * BT * C), h16 * in_floats(L * BT * 4 * C),
      h16 * in_floats(BT * C),  // the bf16 buffers
  };
  std::memcpy(sizes + kBase, more, sizeof more);
  const size_t total = gpt2common::aligned_total(sizes, kBase + kMore, kActAlign);
  if (total > a.capacity) {
    if (a.mem) CU(cudaFree(a.mem));
    a.mem = nullptr;
    a.capacity = 0;
    cudaError_t e = cudaMalloc(&a.mem, total * sizeof(float));
    if (e != cudaSuccess) return fail(GPT2_ERR_MEMORY, "out of GPU memory for the activations of B=%d, T=%d (%.1f GB)", B, T, total * 4.0 / 1e9);
    a.capacity = total;
  }
  float* p = gpt2common::place_activations(a, a.mem, sizes, kActAlign);
  int i = kBase;
  auto take = [&]() {
    float* r = p;
    p += (sizes[i++] + kActAlign - 1) / kActAlign * kActAlign;
    return r;
  };
  a.q = take(); a.k = take(); a.v = take(); a.y = take(); a.datt = take();
  if (!naive) a.q = a.k = a.v = a.y = nullptr;
  auto take16 = [&]() { return reinterpret_cast<__nv_bfloat16*>(take()); };
  a.ln1_16 = take16(); a.atty16 = take16(); a.ln2_16 = take16(); a.fchg16 = take16(); a.lnf16 = take16();
  if (bf16) a.ln1 = a.ln2 = a.fch_gelu = nullptr;
  else a.ln1_16 = a.atty16 = a.ln2_16 = a.fchg16 = a.lnf16 = nullptr;
  a.B = B;
  a.T = T;
  M->host_losses.resize(BT);
  M->host_weights.resize(BT);
  M->host_targets.resize(BT);
  return GPT2_OK;
}

/** Whether the attention runs on the tensor-core kernels: flash, BF16, heads of 64, unless GPT2_CUDA_ATTENTION=flash32. */
inline bool use_tc_attention(const GPT2* M, int hs) { return M->flash && !M->flash32 && M->blas.precision == GPT2_PRECISION_BF16 && hs == kTcHs; }

/** The naive attention's scratch in the activations: q, k, v, y, datt, and dbuf_4c for dv, dq, dk (3 x (B, NH, T, hs) fit in (B, T, 4C)). */
NaiveAttentionScratch naive_scratch(const Activations& a) { return {a.q, a.k, a.v, a.y, a.datt, a.dbuf_4c}; }

/**
 * out (B, T, C) = causal self-attention of qkv (B, T, 3C). `saved` keeps what the backward needs: the logsumexp
 * rows (B, NH, T) with flash, the softmax rows (B, NH, T, T) with the naive path.
 */
int attention_forward(GPT2* M, float* out, float* saved, const float* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  if (use_tc_attention(M, hs)) return tc_flash_forward(out, saved, qkv, B, T, NH);
  if (M->flash) return flash_forward(out, saved, qkv, B, T, NH, hs);
  return naive_attention_forward(M->blas, out, saved, qkv, naive_scratch(M->acts), B, T, NH, hs);
}

/**
 * dqkv (B, T, 3C) (overwritten) from dout (B, T, C); out, qkv and saved as the forward left them. Flash uses datt for
 * the rows' D; the naive path reuses q, k, v, y, datt and dbuf_4c of the activations.
 */
int attention_backward(GPT2* M, float* dqkv, const float* dout, const float* out, const float* qkv, const float* saved, int B, int T, int C,
                       int NH) {
  const Activations& a = M->acts;
  const int hs = C / NH;
  if (M->flash) {
    TRY(flash_rowdot(a.datt, dout, out, B, T, NH, hs));
    if (use_tc_attention(M, hs)) return tc_flash_backward(dqkv, dout, qkv, saved, a.datt, B, T, NH);
    return flash_backward(dqkv, dout, qkv, saved, a.datt, B, T, NH, hs);
  }
  return naive_attention_backward(M->blas, dqkv, dout, qkv, saved, naive_scratch(a), B, T, NH, hs);
}

int forward_hidden(GPT2* M, int B, int T) {
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, N = B * T;
  const float eps = M->cfg.ln_eps;
  Activations& a = M->acts;
  const size_t NC = (size_t)N * C;
  const double mm = 2.0 * N * C * C, att_flops = 2.0 * B * T * (double)T * C;  // a C x C matmul; the causal attention
  if (M->blas.precision == GPT2_PRECISION_BF16 && M->blas.bf16_stale) TIMED("bf16 weights", 0, TRY(refresh_bf16_params(M->blas)));
  TIMED("encoder", 0, TRY(encoder_forward(a.encoded, a.inputs, M->p.wte, M->p.wpe, N, T, C, 0)));
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    float* ln1 = a.ln1 ? a.ln1 + l * NC : nullptr;
    __nv_bfloat16* ln1_16 = a.ln1_16 ? a.ln1_16 + l * NC : nullptr;
    float* qkv = a.qkv + l * NC * 3;
    float* atty = a.atty + l * NC;
    __nv_bfloat16* atty16 = a.atty16 ? a.atty16 + l * NC : nullptr;
    float* att = a.att + l * saved_per_layer(M, B, T);
    float* residual2 = a.residual2 + l * NC;
    float* ln2 = a.ln2 ? a.ln2 + l * NC : nullptr;
    __nv_bfloat16* ln2_16 = a.ln2_16 ? a.ln2_16 + l * NC : nullptr;
    float* fch = a.fch + l * NC * 4;
    float* fch_gelu = a.fch_gelu ? a.fch_gelu + l * NC * 4 : nullptr;
    __nv_bfloat16* fchg16 = a.fchg16 ? a.fchg16 + l * NC * 4 : nullptr;
    float* residual3 = a.residual3 + l * NC;
    TIMED("layernorm", 0, TRY(layernorm_forward(ln1, ln1_16, a.ln1_mean + l * N, a.ln1_rstd + l * N, residual, w.ln1w, w.ln1b, N, C, eps)));
    TIMED("matmul qkv", 3 * mm, TRY(matmul_forward(M->blas, qkv, ln1, ln1_16, w.qkvw, w.qkvb, nullptr, N, C, 3 * C)));
    TIMED("attention", att_flops, TRY(attention_forward(M, atty, att, qkv, B, T, C, NH)));
    if (atty16) {  // the attention backward needs atty in FP32; the GEMMs take this copy
      TIMED("attention bf16 copy", 0, to_bf16_kernel<<<blocks_for(NC), kThreads>>>(atty16, atty, NC); LAUNCHED());
    }
    TIMED("matmul attproj", mm, TRY(matmul_forward(M->blas, residual2, atty, atty16, w.attprojw, w.attprojb, residual, N, C, C)));
    TIMED("layernorm", 0, TRY(layernorm_forward(ln2, ln2_16, a.ln2_mean + l * N, a.ln2_rstd + l * N, residual2, w.ln2w, w.ln2b, N, C, eps)));
    TIMED("matmul fc", 4 * mm, TRY(matmul_forward(M->blas, fch, ln2, ln2_16, w.fcw, w.fcb, nullptr, N, C, 4 * C)));
    TIMED("gelu", 0, TRY(gelu_forward(fch_gelu, fchg16, fch, NC * 4)));
    TIMED("matmul fcproj", 4 * mm, TRY(matmul_forward(M->blas, residual3, fch_gelu, fchg16, w.fcprojw, w.fcprojb, residual2, N, 4 * C, C)));
  }
  Timed timed(M->prof, "layernorm");
  return layernorm_forward(a.lnf, a.lnf16, a.lnf_mean, a.lnf_rstd, a.residual3 + (L - 1) * NC, M->p.lnfw, M->p.lnfb, N, C, eps);
}

int backward(GPT2* M, int B, int T) {
  const int L = M->cfg.num_layers, C = M->cfg.channels, NH = M->cfg.num_heads, V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size;
  const int N = B * T;
  const size_t NC = (size_t)N * C;
  Activations& a = M->acts;
  Tensors& g = M->g;
  const double mm = 4.0 * N * C * C, att_flops = 4.0 * B * T * (double)T * C;  // backward: twice the forward's work
  TIMED("logits backward", 4.0 * N * (double)V * C, {
    TRY(gemm(M->blas, false, false, N, C, V, 1.f, a.logits, Vp, M->p.wte, C, 0.f, a.dbuf_c, C, a.dlogits16));
    TRY(gemm(M->blas, true, false, V, C, N, 1.f, a.logits, Vp, a.lnf, C, 1.f, g.wte, C, a.dlogits16, a.lnf16));
  });
  CU(cudaMemset(a.dres, 0, NC * sizeof(float)));
  TIMED("layernorm backward", 0,
        TRY(layernorm_backward(a.dres, g.lnfw, g.lnfb, a.dbuf_c, a.residual3 + (L - 1) * NC, M->p.lnfw, a.lnf_mean, a.lnf_rstd, N, C)));
  for (int l = L - 1; l >= 0; l--) {
    const LayerTensors& w = M->p.layers[l];
    const LayerTensors& dw = g.layers[l];
    const float* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * NC;
    const float* fch_gelu = a.fch_gelu ? a.fch_gelu + l * NC * 4 : nullptr;
    const __nv_bfloat16* fchg16 = a.fchg16 ? a.fchg16 + l * NC * 4 : nullptr;
    const float* ln2 = a.ln2 ? a.ln2 + l * NC : nullptr;
    const __nv_bfloat16* ln2_16 = a.ln2_16 ? a.ln2_16 + l * NC : nullptr;
    const __nv_bfloat16* atty16 = a.atty16 ? a.atty16 + l * NC : nullptr;
    const float* ln1 = a.ln1 ? a.ln1 + l * NC : nullptr;
    const __nv_bfloat16* ln1_16 = a.ln1_16 ? a.ln1_16 + l * NC : nullptr;
    TIMED("matmul fcproj backward", 4 * mm,
          TRY(matmul_backward(M->blas, a.dbuf_4c, dw.fcprojw, dw.fcprojb, a.dres, fch_gelu, fchg16, w.fcprojw, N, 4 * C, C)));
    TIMED("gelu backward", 0, TRY(gelu_backward(a.dbuf_4c, a.fch + l * NC * 4, NC * 4)));
    TIMED("matmul fc backward", 4 * mm, TRY(matmul_backward(M->blas, a.dbuf_c, dw.fcw, dw.fcb, a.dbuf_4c, ln2, ln2_16, w.fcw, N, C, 4 * C)));
    TIMED("layernorm backward", 0,
          TRY(layernorm_backward(a.dres, dw.ln2w, dw.ln2b, a.dbuf_c, a.residual2 + l * NC, w.ln2w, a.ln2_mean + l * N, a.ln2_rstd + l * N, N, C)));
    TIMED("matmul attproj backward", mm,
          TRY(matmul_backward(M->blas, a.dbuf_c, dw.attprojw, dw.attprojb, a.dres, a.atty + l * NC, atty16, w.attprojw, N, C, C)));
    // the attention backward works in dbuf_4c (dq, dk, dv) and writes dqkv into... a buffer it does not read: qkv's
    // gradient goes to the fch slot of this layer's activations, which the backward of this layer no longer needs
    float* dqkv = a.fch + l * NC * 4;
    TIMED("attention backward", att_flops,
          TRY(attention_backward(M, dqkv, a.dbuf_c, a.atty + l * NC, a.qkv + l * NC * 3, a.att + l * saved_per_layer(M, B, T), B, T, C, NH)));
    TIMED("matmul qkv backward", 3 * mm, TRY(matmul_backward(M->blas, a.dbuf_c, dw.qkvw, dw.qkvb, dqkv, ln1, ln1_16, w.qkvw, N, C, 3 * C)));
    TIMED("layernorm backward", 0,
          TRY(layernorm_backward(a.dres, dw.ln1w, dw.ln1b, a.dbuf_c, residual, w.ln1w, a.ln1_mean + l * N, a.ln1_rstd + l * N, N, C)));
  }
  TIMED("encoder backward", 0, TRY(encoder_backward(g.wte, g.wpe, a.dres, a.inputs, N, T, C)));
  return GPT2_OK;
}

/** Targets and weights (mask / count) to the device; returns the count through *count. */
int upload_batch(GPT2* M, const int* inputs, const int* targets, const float* mask, int N, int* count) {
  *count = gpt2common::prepare_targets(targets, mask, N, M->host_targets.data(), M->host_weights.data());
  Activations& a = M->acts;
  CU(cudaMemcpy(a.inputs, inputs, N * sizeof(int), cudaMemcpyHostToDevice));
  CU(cudaMemcpy(a.targets, M->host_targets.data(), N * sizeof(int), cudaMemcpyHostToDevice));
  CU(cudaMemcpy(a.weights, M->host_weights.data(), N * sizeof(float), cudaMemcpyHostToDevice));
  return GPT2_OK;
}

int ensure_buffer(GPT2* M, float** slot) {
  if (*slot) return GPT2_OK;
  TRY(dev_alloc(slot, M->num_params));
  if (slot == &M->grads) M->g = view(*M, M->grads);
  return GPT2_OK;
}

/** The name of a matmul precision, as the profile prints it. */
const char* precision_name(int precision) {
  return precision == GPT2_PRECISION_BF16 ? "bf16" : precision == GPT2_PRECISION_TF32 ? "tf32" : "fp32";
}

}  // namespace

// ---- C API -------------------------------------------------------------------------------------------------------

extern "C" {

const char* gpt2_build_info(void) {
  static char buf[512];
  if (!buf[0]) {
    int dev = 0, rt = 0, drv = 0;
    cudaDeviceProp prop;
    std::memset(&prop, 0, sizeof prop);
    cudaGetDevice(&dev);
    cudaGetDeviceProperties(&prop, dev);
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    std::snprintf(buf, sizeof buf, "CUDA runtime %d, driver %d, %s (sm_%d%d), cuBLAS (FP32/TF32/BF16), flash attention, %s", rt, drv,
                  prop.name, prop.major, prop.minor,
#ifdef GPT2_USE_NCCL
                  "NCCL and shm data parallel"
#else
                  "shm data parallel (no NCCL)"
#endif
    );
  }
  return buf;
}

int gpt2_has_blas(void) { return 1; }

int gpt2_create(const GPT2Config* cfg, GPT2** out) {
  TRY(gpt2common::check_create(cfg, out));
  const GPT2Config& c = *cfg;
  // the attention path: GPT2_CUDA_ATTENTION=flash (the default) or naive, read once here
  bool flash = true, flash32 = false;
  if (const char* att = std::getenv("GPT2_CUDA_ATTENTION"); att && *att) {
    if (!std::strcmp(att, "naive")) flash = false;
    else if (!std::strcmp(att, "flash32")) flash32 = true;
    else if (std::strcmp(att, "flash"))
      return fail(GPT2_ERR_ARGUMENT, "GPT2_CUDA_ATTENTION must be flash, flash32 or naive, got \"%s\"", att);
  }
  if (c.channels / c.num_heads > kFlashMaxHs) flash = false;  // the fused kernels hold at most 256 dims per head
  int device = 0;
  (void)cudaGetLastError();  // see use_device
  CU(cudaGetDevice(&device));
  GPT2* M = new (std::nothrow) GPT2();
  if (!M) return fail(GPT2_ERR_MEMORY, "out of memory");
  M->cfg = c;
  M->device = device;
  M->flash = flash;
  M->flash32 = flash32;
  if (const char* prof = std::getenv("GPT2_CUDA_PROFILE"); prof && *prof && std::strcmp(prof, "0")) M->prof.on = true;
  gpt2common::init_param_layout(*M, c);
  int rc = dev_alloc(&M->params, M->num_params);
  M->blas.params = M->params;
  M->blas.num_params = M->num_params;
  if (rc == GPT2_OK && cublasCreate(&M->blas.handle) != CUBLAS_STATUS_SUCCESS) rc = fail(GPT2_ERR_DEVICE, "cublasCreate failed (no usable GPU?)");
  if (rc == GPT2_OK && cudaMalloc(&M->partials, kNormBlocks * sizeof(double)) != cudaSuccess) rc = fail(GPT2_ERR_MEMORY, "out of GPU memory");
  if (rc != GPT2_OK) {
    gpt2_destroy(M);
    return rc;
  }
  M->p = view(*M, M->params);
  *out = M;
  return GPT2_OK;
}

void gpt2_destroy(GPT2* M) {
  if (!M) return;
  use_device(M->device);
  if (M->prof.on) {
    const int hs = M->cfg.channels / M->cfg.num_heads;
    const char* att = !M->flash ? "naive" : use_tc_attention(M, hs) ? "flash on tensor cores" : "flash (FP32 kernels)";
    prof_print(M->prof, precision_name(M->blas.precision), att);
  }
  prof_free(M->prof);
  for (float* p : {M->params, M->grads, M->m, M->v, M->acts.mem}) cudaFree(p);
  cudaFree(M->partials);
  blas_free(M->blas);
  delete M;
}

int gpt2_set_threads(GPT2* M, int threads) {
  if (!M || threads < 1) return fail(GPT2_ERR_ARGUMENT, "threads must be >= 1");
  return GPT2_OK;  // the GPU decides
}

int gpt2_set_gemm(GPT2* M, int gemm) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  if (gemm != GPT2_GEMM_BLAS) return fail(GPT2_ERR_ARGUMENT, "the CUDA engine multiplies with cuBLAS only");
  return GPT2_OK;
}

int gpt2_set_precision(GPT2* M, int precision) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  // BF16 runs its GEMMs through cublasGemmEx; the SGEMMs left (the naive attention's batched ones) use TF32 tensor
  // cores, finer than bf16 and far faster than FP32
  if (precision == GPT2_PRECISION_FP32) CB(cublasSetMathMode(M->blas.handle, CUBLAS_DEFAULT_MATH));
  else if (precision == GPT2_PRECISION_TF32 || precision == GPT2_PRECISION_BF16) CB(cublasSetMathMode(M->blas.handle, CUBLAS_TF32_TENSOR_OP_MATH));
  else return fail(GPT2_ERR_ARGUMENT, "unknown precision %d (FP32 = 0, TF32 = 1, BF16 = 2)", precision);
  M->blas.precision = precision;
  M->blas.bf16_stale = true;
  return GPT2_OK;
}

int gpt2_read(GPT2* M, int which, size_t offset, float* dst, size_t count) {
  if (!M || !dst) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  float** slot = nullptr;
  TRY(gpt2common::buffer_for(M, which, offset, count, "read", &slot));
  if (*slot) CU(cudaMemcpy(dst, *slot + offset, count * sizeof(float), cudaMemcpyDeviceToHost));
  else std::memset(dst, 0, count * sizeof(float));
  return GPT2_OK;
}

int gpt2_write(GPT2* M, int which, size_t offset, const float* src, size_t count) {
  if (!M || !src) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  float** slot = nullptr;
  TRY(gpt2common::buffer_for(M, which, offset, count, "write", &slot));
  TRY(ensure_buffer(M, slot));
  CU(cudaMemcpy(*slot + offset, src, count * sizeof(float), cudaMemcpyHostToDevice));
  if (which == GPT2_BUF_PARAMS) M->blas.bf16_stale = true;
  return GPT2_OK;
}

int gpt2_forward_backward(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float loss_scale, float* loss) {
  if (!M || !inputs || !targets || !loss) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  TRY(check_bt(M->cfg, B, T));
  const int N = B * T;
  TRY(check_ids(M->cfg, inputs, N, false, "inputs"));
  TRY(check_ids(M->cfg, targets, N, true, "targets"));
  TRY(ensure_buffer(M, &M->grads));
  TRY(ensure_acts(M, B, T));
  int count = 0;
  TRY(upload_batch(M, inputs, targets, mask, N, &count));
  *loss = 0.f;
  if (count == 0) return GPT2_OK;
  Activations& a = M->acts;
  TRY(forward_hidden(M, B, T));
  const int V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size, C = M->cfg.channels;
  TIMED("logits", 2.0 * N * (double)V * C, TRY(gemm(M->blas, false, true, N, V, C, 1.f, a.lnf, C, M->p.wte, C, 0.f, a.logits, Vp, a.lnf16)));
  // BF16: the gradient is only ever a bf16 GEMM operand, so it is written in bf16 straight away
  a.dlogits16 = nullptr;
  __nv_bfloat16* dlogits16 = nullptr;
  if (M->blas.precision == GPT2_PRECISION_BF16) {
    TRY(bf16_scratch(M->blas, 0, (size_t)N * Vp));
    dlogits16 = M->blas.scratch_bf16[0];
  }
  TIMED("crossentropy", 0, TRY(crossentropy(a.logits, a.losses, a.targets, a.weights, N, V, Vp, true, loss_scale, dlogits16)));
  a.dlogits16 = dlogits16;
  TRY(backward(M, B, T));
  CU(cudaMemcpy(M->host_losses.data(), a.losses, N * sizeof(float), cudaMemcpyDeviceToHost));
  if (M->prof.on) {
    M->prof.steps++;
    M->prof.B = B;
    M->prof.T = T;
    prof_flush(M->prof);
  }
  double total = 0;
  for (int i = 0; i < N; i++)
    if (M->host_weights[i] != 0.f) total += (double)M->host_losses[i] * M->host_weights[i];
  *loss = (float)total;
  return GPT2_OK;
}

int gpt2_zero_grad(GPT2* M) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  if (M->grads) CU(cudaMemset(M->grads, 0, M->num_params * sizeof(float)));
  return GPT2_OK;
}

int gpt2_grad_norm(GPT2* M, double* norm) {
  if (!M || !norm) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  *norm = 0;
  if (!M->grads) return GPT2_OK;
  TIMED("grad norm", 0, TRY(norm_partials(M->partials, M->grads, M->num_params)));
  return norm_from_partials(norm, M->partials);
}

int gpt2_scale_grads(GPT2* M, float factor) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  if (!M->grads) return GPT2_OK;
  return scale_floats(M->grads, factor, M->num_params);
}

int gpt2_adamw(GPT2* M, double lr, double beta1, double beta2, double eps, double weight_decay, int t) {
  if (!M) return fail(GPT2_ERR_ARGUMENT, "null model");
  TRY(use_device(M->device));
  gpt2common::AdamWScalars k;
  TRY(gpt2common::adamw_scalars(lr, beta1, beta2, eps, weight_decay, t, &k));
  TRY(ensure_buffer(M, &M->grads));
  TRY(ensure_buffer(M, &M->m));
  TRY(ensure_buffer(M, &M->v));
  Timed timed(M->prof, "adamw");
  TRY(adamw_update(M->params, M->grads, M->m, M->v, *M, k, weight_decay != 0.0));
  M->blas.bf16_stale = true;
  return GPT2_OK;
}

int gpt2_logits(GPT2* M, const int* inputs, int B, int T, float* out) {
  if (!M || !inputs || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  TRY(check_bt(M->cfg, B, T));
  TRY(check_ids(M->cfg, inputs, (size_t)B * T, false, "inputs"));
  TRY(ensure_acts(M, B, T));
  const int N = B * T, V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size, C = M->cfg.channels;
  CU(cudaMemcpy(M->acts.inputs, inputs, N * sizeof(int), cudaMemcpyHostToDevice));
  TRY(forward_hidden(M, B, T));
  TRY(gemm(M->blas, false, true, N, V, C, 1.f, M->acts.lnf, C, M->p.wte, C, 0.f, M->acts.logits, Vp, M->acts.lnf16));
  CU(cudaMemcpy2D(out, (size_t)V * sizeof(float), M->acts.logits, (size_t)Vp * sizeof(float), (size_t)V * sizeof(float), N, cudaMemcpyDeviceToHost));
  if (M->prof.on) prof_flush(M->prof);  // evaluation's sections count too; the pool of events stays small
  return GPT2_OK;
}

int gpt2_token_losses(GPT2* M, const int* inputs, const int* targets, const float* mask, int B, int T, float* out) {
  if (!M || !inputs || !targets || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  TRY(check_bt(M->cfg, B, T));
  const int N = B * T, V = M->cfg.vocab_size, Vp = M->cfg.padded_vocab_size, C = M->cfg.channels;
  TRY(check_ids(M->cfg, inputs, N, false, "inputs"));
  TRY(check_ids(M->cfg, targets, N, true, "targets"));
  TRY(ensure_acts(M, B, T));
  int count = 0;
  TRY(upload_batch(M, inputs, targets, mask, N, &count));
  Activations& a = M->acts;
  TRY(forward_hidden(M, B, T));
  TRY(gemm(M->blas, false, true, N, V, C, 1.f, a.lnf, C, M->p.wte, C, 0.f, a.logits, Vp, a.lnf16));
  TRY(crossentropy(a.logits, a.losses, a.targets, a.weights, N, V, Vp, false, 0.f, nullptr));
  CU(cudaMemcpy(out, a.losses, N * sizeof(float), cudaMemcpyDeviceToHost));
  if (M->prof.on) prof_flush(M->prof);
  return GPT2_OK;
}

int gpt2_cache_create(GPT2* M, int batch, int max_len, GPT2Cache** out) {
  if (!M || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  *out = nullptr;
  TRY(gpt2common::check_cache(M->cfg, batch, max_len));
  GPT2Cache* c = new (std::nothrow) GPT2Cache();
  if (!c) return fail(GPT2_ERR_MEMORY, "out of memory");
  c->device = M->device;
  gpt2common::init_cache_shape(*c, M->cfg, batch, max_len);
  const size_t n = (size_t)c->L * batch * c->C * max_len;
  int rc = dev_alloc(&c->k, n);
  if (rc == GPT2_OK) rc = dev_alloc(&c->v, n);
  if (rc == GPT2_OK) rc = dev_alloc(&c->last, (size_t)batch * c->C);
  if (rc == GPT2_OK) rc = dev_alloc(&c->lastln, (size_t)batch * c->C);
  if (rc == GPT2_OK) rc = dev_alloc(&c->out, (size_t)batch * M->cfg.vocab_size);
  if (rc != GPT2_OK) {
    gpt2_cache_destroy(c);
    return rc;
  }
  *out = c;
  return GPT2_OK;
}

void gpt2_cache_destroy(GPT2Cache* c) {
  if (!c) return;
  use_device(c->device);
  for (float* p : {c->k, c->v, c->x, c->ln, c->qkv, c->atty, c->fch, c->last, c->lastln, c->out}) cudaFree(p);
  cudaFree(c->tokens);
  delete c;
}

int gpt2_cache_length(const GPT2Cache* c) { return c ? c->length : 0; }

int gpt2_decode(GPT2* M, GPT2Cache* c, const int* tokens, int S, float* out) {
  if (!M || !c || !tokens || !out) return fail(GPT2_ERR_ARGUMENT, "null argument");
  TRY(use_device(M->device));
  TRY(gpt2common::check_decode(M->cfg, *c, S));
  const int B = c->B, C = c->C, NH = c->NH, hs = c->hs, L = c->L, V = M->cfg.vocab_size, N = B * S, pos = c->length, maxLen = c->max_len;
  TRY(check_ids(M->cfg, tokens, (size_t)N, false, "tokens"));
  if (S > c->cap_S) {
    for (float* p : {c->x, c->ln, c->qkv, c->atty, c->fch}) cudaFree(p);
    cudaFree(c->tokens);
    c->x = c->ln = c->qkv = c->atty = c->fch = nullptr;
    c->tokens = nullptr;
    c->cap_S = 0;
    const size_t rows = (size_t)B * S;
    TRY(dev_alloc(&c->x, rows * C));
    TRY(dev_alloc(&c->ln, rows * C));
    TRY(dev_alloc(&c->qkv, rows * 3 * C));
    TRY(dev_alloc(&c->atty, rows * C));
    TRY(dev_alloc(&c->fch, rows * 4 * C));
    CU(cudaMalloc(&c->tokens, rows * sizeof(int)));
    c->cap_S = S;
  }
  const float eps = M->cfg.ln_eps;
  CU(cudaMemcpy(c->tokens, tokens, N * sizeof(int), cudaMemcpyHostToDevice));
  TRY(encoder_forward(c->x, c->tokens, M->p.wte, M->p.wpe, N, S, C, pos));
  for (int l = 0; l < L; l++) {
    const LayerTensors& w = M->p.layers[l];
    float* K = c->k + (size_t)l * B * NH * maxLen * hs;
    float* Vc = c->v + (size_t)l * B * NH * maxLen * hs;
    TRY(layernorm_forward(c->ln, nullptr, nullptr, nullptr, c->x, w.ln1w, w.ln1b, N, C, eps));
    TRY(matmul_forward(M->blas, c->qkv, c->ln, nullptr, w.qkvw, w.qkvb, nullptr, N, C, 3 * C));
    TRY(decode_attention(c->atty, K, Vc, c->qkv, B, S, NH, hs, maxLen, pos));
    TRY(matmul_forward(M->blas, c->x, c->atty, nullptr, w.attprojw, w.attprojb, c->x, N, C, C));
    TRY(layernorm_forward(c->ln, nullptr, nullptr, nullptr, c->x, w.ln2w, w.ln2b, N, C, eps));
    TRY(matmul_forward(M->blas, c->fch, c->ln, nullptr, w.fcw, w.fcb, nullptr, N, C, 4 * C));
    TRY(gelu_forward(c->fch, nullptr, c->fch, (size_t)N * 4 * C));
    TRY(matmul_forward(M->blas, c->x, c->fch, nullptr, w.fcprojw, w.fcprojb, c->x, N, 4 * C, C));
  }
  // the last new position of each row: rows b*S + S-1 of x, gathered by a strided copy
  CU(cudaMemcpy2D(c->last, C * sizeof(float), c->x + (size_t)(S - 1) * C, (size_t)S * C * sizeof(float), C * sizeof(float), B,
                  cudaMemcpyDeviceToDevice));
  TRY(layernorm_forward(c->lastln, nullptr, nullptr, nullptr, c->last, M->p.lnfw, M->p.lnfb, B, C, eps));
  TRY(gemm(M->blas, false, true, B, V, C, 1.f, c->lastln, C, M->p.wte, C, 0.f, c->out, V));
  CU(cudaMemcpy(out, c->out, (size_t)B * V * sizeof(float), cudaMemcpyDeviceToHost));
  c->length += S;
  return GPT2_OK;
}

// ---- data parallel -----------------------------------------------------------------------------------------------

int gpt2_allreduce_grads(GPT2* M, GPT2Comm* c) {
  if (!M || !c) return fail(GPT2_ERR_ARGUMENT, "gpt2_allreduce_grads: null argument");
  if (c->aborted) return fail(GPT2_ERR_STATE, "gpt2_allreduce_grads: the communicator was aborted");
  TRY(use_device(M->device));
  TRY(ensure_buffer(M, &M->grads));  // a rank without a backward yet contributes zeros
  if (c->world == 1) return GPT2_OK;
  Timed timed(M->prof, "allreduce");
  return comm_allreduce_grads(c, M->grads, M->num_params, M->device);
}

}  // extern "C"

// The GPT-2 layers of the CPU engine, llm.c style: one forward and one backward function per layer, on plain
// row-major float buffers. N = B*T rows. Backward functions ADD into parameter gradients (so micro-steps
// accumulate) and, where noted, into input gradients. All run on cx.threads OpenMP threads, with static
// schedules and fixed-order reductions that do not depend on the thread count: the built-in SGEMM path gives the
// same bits with any number of threads (BLAS libraries may not).
#pragma once

#include <cstddef>

#include "gemm.h"

namespace gpt2cpu {

/** Per-thread scratch the layers need: the size in floats for `threads` threads and C channels. */
size_t layer_scratch_floats(int threads, int C, int maxT);

// ---- encoder: out = wte[inp] + wpe[pos0 + t] ------------------------------------------------------------------
/** out (B, T, C); inp (B, T) token ids; wte (Vp, C); wpe (maxT, C). Positions start at pos0. */
void encoder_forward(const Ctx& cx, float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C, int pos0);
/** dwte (Vp, C) +=, dwpe (maxT, C) += from dout (B, T, C). */
void encoder_backward(const Ctx& cx, float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C);

// ---- layernorm: out = (x - mean) / sqrt(var + eps) * w + b, biased variance ----------------------------------
/** out (N, C); mean, rstd (N) may be null (inference); inp (N, C); w, b (C). */
void layernorm_forward(const Ctx& cx, float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b,
                       int N, int C, float eps);
/** dinp (N, C) +=; dw, db (C) +=. */
void layernorm_backward(const Ctx& cx, float* dinp, float* dw, float* db, const float* dout, const float* inp,
                        const float* w, const float* mean, const float* rstd, int N, int C);

// ---- matmul with bias, weights in the [out, in] layout: out = inp @ W^T + bias (+ add) -----------------------
/** out (N, OC); inp (N, IC); W (OC, IC); bias (OC) or null; add (N, OC) or null (a residual, may equal out). */
void matmul_forward(const Ctx& cx, float* out, const float* inp, const float* W, const float* bias, const float* add, int N,
                    int IC, int OC);
/** dinp (N, IC) = (overwritten); dW (OC, IC) +=; dbias (OC) += (if not null). */
void matmul_backward(const Ctx& cx, float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* W,
                     int N, int IC, int OC);

// ---- causal self-attention over a packed qkv ------------------------------------------------------------------
/** out (B, T, C); att (B, NH, T, T) softmax rows (only t2 <= t written); qkv (B, T, 3C) = [q | k | v]. */
void attention_forward(const Ctx& cx, float* out, float* att, const float* qkv, int B, int T, int C, int NH);
/** dqkv (B, T, 3C) (overwritten); dout (B, T, C); qkv, att as saved by the forward. */
void attention_backward(const Ctx& cx, float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att, int B,
                        int T, int C, int NH);

// ---- GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) = x * sigmoid(2 u) ------------
void gelu_forward(const Ctx& cx, float* out, const float* inp, size_t n);
/** dinout (n): the gradient w.r.t. the GELU output on entry, w.r.t. its input on return. inp: the GELU input. */
void gelu_backward(const Ctx& cx, float* dinout, const float* inp, size_t n);

// ---- softmax cross-entropy over the real vocabulary ------------------------------------------------------------
/**
 * logits (N, V) in; losses (N) out (NaN where weight == 0, or every position when weights is null and
 * targets < 0). With grad: logits becomes dlogits = (softmax - onehot) * weight * scale in place (zero rows
 * where the weight is 0). Returns sum(loss_i * weight_i) in double.
 */
double crossentropy(const Ctx& cx, float* logits, float* losses, const int* targets, const float* weights, int N, int V,
                    bool grad, float scale);

/** out (n) += a (n). */
void add_inplace(const Ctx& cx, float* out, const float* a, size_t n);

}  // namespace gpt2cpu

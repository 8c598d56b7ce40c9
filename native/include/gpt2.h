/*
 * The C API of the native GPT-2 engine, shared by the CPU build (native/cpu) and the CUDA build (native/cuda).
 *
 * One GPT2 holds a model in the llm.c style: its parameters, gradients, AdamW moments and activations live in
 * preallocated contiguous buffers. Parameters are laid out exactly as src/core/model/config.ts paramSpecs()
 * orders them (wte, wpe, then per layer ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj, then ln_f),
 * each tensor row-major, matmul weights in the [out, in] layout of nn.Linear (as llm.c).
 *
 * Every function returns GPT2_OK or an error code; gpt2_last_error() says what was wrong (per thread).
 * Calls on one model must not overlap; different models are independent.
 */
#ifndef GPT2_NATIVE_H
#define GPT2_NATIVE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2_API_VERSION 1

enum {
  GPT2_OK = 0,
  GPT2_ERR_ARGUMENT = 1, /* a bad size, id or pointer */
  GPT2_ERR_MEMORY = 2,   /* an allocation failed */
  GPT2_ERR_STATE = 3,    /* e.g. the KV cache is full */
  GPT2_ERR_DEVICE = 4,   /* a CUDA / cuBLAS failure */
};

/** Which of the model's parameter-shaped buffers gpt2_read / gpt2_write address. */
enum { GPT2_BUF_PARAMS = 0, GPT2_BUF_GRADS = 1, GPT2_BUF_M = 2, GPT2_BUF_V = 3 };

/** Matrix-multiply backend: the CPU engine's BLAS or built-in SGEMM; the CUDA engine's cuBLAS (BLAS) only. */
enum { GPT2_GEMM_BLAS = 0, GPT2_GEMM_BUILTIN = 1 };

/** Matmul precision. FP32 everywhere; the CUDA engine also has TF32 tensor cores. Master weights stay FP32. */
enum { GPT2_PRECISION_FP32 = 0, GPT2_PRECISION_TF32 = 1, GPT2_PRECISION_BF16 = 2 };

typedef struct {
  int num_layers;        /* L */
  int num_heads;         /* NH; channels % num_heads == 0 */
  int channels;          /* C */
  int max_seq_len;       /* maxT, rows of wpe */
  int vocab_size;        /* V, the real vocabulary; ids >= V never appear and padded rows never become logits */
  int padded_vocab_size; /* Vp >= V, rows of wte */
  float ln_eps;          /* LayerNorm epsilon (1e-5) */
} GPT2Config;

typedef struct GPT2 GPT2;
typedef struct GPT2Cache GPT2Cache;

/** The message of the last failed call on this thread ("" if none). */
const char* gpt2_last_error(void);
/** One line about the build: compiler, SIMD width, OpenMP, BLAS. Static storage. */
const char* gpt2_build_info(void);
/** 1 when this build links a BLAS (so GPT2_GEMM_BLAS can be chosen). */
int gpt2_has_blas(void);

int gpt2_create(const GPT2Config* config, GPT2** out);
void gpt2_destroy(GPT2* model);

/** Threads for this model's work (OpenMP), >= 1. Default: omp_get_max_threads() at creation. */
int gpt2_set_threads(GPT2* model, int threads);
/** GPT2_GEMM_BLAS (the default when linked) or GPT2_GEMM_BUILTIN. */
int gpt2_set_gemm(GPT2* model, int gemm);
/** GPT2_PRECISION_*; an engine refuses the ones it does not have (the CPU engine: all but FP32). */
int gpt2_set_precision(GPT2* model, int precision);

/** Number of parameter tensors and the element count of tensor i (paramSpecs order). */
int gpt2_num_tensors(const GPT2* model);
size_t gpt2_tensor_numel(const GPT2* model, int i);
/** Total parameters (the sum of all tensors). */
size_t gpt2_num_parameters(const GPT2* model);

/** Copies count floats at element offset of buffer `which` to dst / from src. GRADS, M and V read as zero before use. */
int gpt2_read(GPT2* model, int which, size_t offset, float* dst, size_t count);
int gpt2_write(GPT2* model, int which, size_t offset, const float* src, size_t count);

/**
 * Forward and backward over one (B, T) micro-batch. Gradients of loss_scale * loss are ADDED to the gradient
 * buffers. A position counts when targets >= 0 and (mask == NULL or mask != 0). *loss = the mean cross-entropy
 * over counted positions (unscaled); 0 and no gradient when none counts.
 */
int gpt2_forward_backward(GPT2* model, const int* inputs, const int* targets, const float* mask, int B, int T,
                          float loss_scale, float* loss);
int gpt2_zero_grad(GPT2* model);
/** The global L2 norm of all gradients (accumulated in double). */
int gpt2_grad_norm(GPT2* model, double* norm);
int gpt2_scale_grads(GPT2* model, float factor);
/**
 * One AdamW step exactly as torch.optim.AdamW: p *= 1 - lr*wd on tensors of rank >= 2 only, m = b1 m + (1-b1) g,
 * v = b2 v + (1-b2) g^2, p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). t is the 1-based step number. The
 * scalars are formed in double and applied in float, as PyTorch does with Python floats.
 */
int gpt2_adamw(GPT2* model, double lr, double beta1, double beta2, double eps, double weight_decay, int t);

/** Logits over the real vocabulary: out (B, T, V). */
int gpt2_logits(GPT2* model, const int* inputs, int B, int T, float* out);
/** Per-position cross-entropy out (B, T); NaN where the position does not count. */
int gpt2_token_losses(GPT2* model, const int* inputs, const int* targets, const float* mask, int B, int T, float* out);

/** A KV cache for `batch` rows and up to max_len positions (<= max_seq_len). */
int gpt2_cache_create(GPT2* model, int batch, int max_len, GPT2Cache** out);
void gpt2_cache_destroy(GPT2Cache* cache);
int gpt2_cache_length(const GPT2Cache* cache);
/** Feeds tokens (batch, S) at the next S positions; out (batch, V) = the logits at the last of them. */
int gpt2_decode(GPT2* model, GPT2Cache* cache, const int* tokens, int S, float* out);

#ifdef __cplusplus
}
#endif

#endif /* GPT2_NATIVE_H */

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

#define GPT2_API_VERSION 3

enum {
  GPT2_OK = 0,
  GPT2_ERR_ARGUMENT = 1, /* a bad size, id or pointer */
  GPT2_ERR_MEMORY = 2,   /* an allocation failed */
  GPT2_ERR_STATE = 3,    /* e.g. the KV cache is full */
  GPT2_ERR_DEVICE = 4,   /* a CUDA / cuBLAS failure */
  GPT2_ERR_PEER = 5,     /* data parallel: another rank of the group failed (gpt2_comm_abort, an NCCL error) or did not
                            come or answer in time, so this one stops */
  GPT2_ERR_NO_SPACE = 6, /* data parallel: the shared-memory communicator's segment has no room (/dev/shm is full) */
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


/* ---- Data parallel ------------------------------------------------------------------------------------------------
 * One process per rank, each with its own GPT2 of the same config and the same initial parameters. After the
 * micro-steps of an optimizer step, gpt2_allreduce_grads replaces every rank's gradients with their mean over the
 * ranks; the norm, clipping and AdamW then run identically everywhere, so the parameters stay equal.
 *
 * A communicator id is text (at most GPT2_COMM_ID_BYTES - 1 characters), made once by the first rank with
 * gpt2_comm_new_id and handed to the others by the parent process:
 *   "shm:<name>"       a POSIX shared-memory segment on one machine (every build; the CUDA build stages through the
 *                      host)
 *   "nccl:<hex>"       an ncclUniqueId (the CUDA build with NCCL); one GPU per rank, device = GPT2_STUDIO_LOCAL_RANK %
 *                      device count when that variable is set (the rank's place on its own machine), else rank %
 *                      device count
 *   "mpi:world"        (the CPU build with MPI) the MPI_COMM_WORLD of the job this process was started in (mpirun,
 *                      srun); needs no gpt2_comm_new_id, and the rank and world passed to gpt2_comm_create must be
 *                      MPI's own
 *   "mpi:port:<port>"  (the CPU build with MPI) a port that gpt2_comm_new_id("mpi") opened in rank 0's process; rank 0
 *                      must join in that process. Open MPI connects separately started processes only when each runs
 *                      under `mpirun -np 1 --ompi-server file:URIFILE` with `ompi-server --report-uri URIFILE` running
 * The reductions give every rank the same bits: the shared-memory and NCCL ones sum the ranks in rank order; the MPI
 * one sums each element on exactly one rank and sends that sum to all.
 *
 * MPI is initialized by the first "mpi" call (MPI_Init_thread; libmpi is made global first, so that Open MPI's
 * plugins load inside a process that loaded this library with RTLD_LOCAL) and finalized when the process exits
 * (atexit), unless a communicator was aborted or a call is still blocked in MPI.
 */
#define GPT2_COMM_ID_BYTES 512

typedef struct GPT2Comm GPT2Comm;

/**
 * Writes a new communicator id (NUL-terminated) into id. kind: "shm", "nccl" (CUDA with NCCL), "mpi" (CPU with MPI:
 * an "mpi:port:" id), or NULL for the build's best (CPU: "shm"). A build without the kind says so (GPT2_ERR_ARGUMENT).
 */
int gpt2_comm_new_id(const char* kind, char* id);
/** Joins rank `rank` of `world` to the communicator `id`. Blocks until every rank has joined, or fails after
 * timeout_ms (0 = the default, 120 s) with GPT2_ERR_PEER. Over MPI there is no time limit (MPI cannot give up a
 * connect or an accept): the process that started the ranks must end them. The CUDA build selects this rank's
 * device here, before gpt2_create. */
int gpt2_comm_create(const char* id, int rank, int world, int timeout_ms, GPT2Comm** out);
/**
 * Tells the other ranks that this one failed. Over "shm" their waiting calls return GPT2_ERR_PEER instead of hanging.
 * Over "nccl" the peers learn of it only if NCCL reports an error, which it may never do for a peer that is gone. Over
 * "mpi" a call blocked in MPI cannot be interrupted: the communicator is only marked, so that this rank's later calls
 * fail with GPT2_ERR_PEER (and MPI is not finalized at exit). In both of the last cases the process that started the
 * ranks must end the others when one fails (the studio's launcher does; so does mpirun when a rank exits with an
 * error).
 */
void gpt2_comm_abort(GPT2Comm* comm);
void gpt2_comm_destroy(GPT2Comm* comm);
/** Replaces the model's gradients with their mean over all ranks (every rank calls it, in the same order). */
int gpt2_allreduce_grads(GPT2* model, GPT2Comm* comm);
/** Replaces values[0..n) with their mean over all ranks (n <= 64), e.g. the step's loss. */
int gpt2_comm_allreduce_mean(GPT2Comm* comm, double* values, int n);
/**
 * In place: data[0..n) (host memory) becomes rank 0's data[0..n) on every rank, e.g. the initial parameters. Every
 * rank calls it with the same n.
 */
int gpt2_comm_broadcast(GPT2Comm* comm, float* data, size_t n);
/**
 * The first line of MPI_Get_library_version of the MPI this build links (e.g. "Open MPI v4.1.4, package: ..."), or
 * NULL when it was built without MPI. Static storage; MPI need not be initialized. The CPU build only (a caller that
 * may hold another build looks it up with dlsym).
 */
const char* gpt2_mpi_version(void);


/* ---- Devices (the CUDA build only) --------------------------------------------------------------------------------
 * What a run's memory plan is checked against before the run starts: each visible GPU's free memory, without building
 * a model. The CPU build does not define these two functions, so a caller that may hold either build looks them up
 * with dlsym (native/node/binding.cpp does).
 */
#define GPT2_DEVICE_NAME_BYTES 256

typedef struct {
  int device;                        /* the CUDA device index (CUDA_VISIBLE_DEVICES applied) */
  size_t free_bytes;                 /* cudaMemGetInfo: free now, whatever other processes hold */
  size_t total_bytes;                /* cudaMemGetInfo: the device's memory (a MIG instance's, under MIG) */
  char name[GPT2_DEVICE_NAME_BYTES]; /* cudaGetDeviceProperties, e.g. "NVIDIA H100 80GB HBM3"; NUL-terminated */
} GPT2DeviceInfo;

/** The number of visible CUDA devices. A machine without a device or a driver is GPT2_OK with *count = 0. */
int gpt2_device_count(int* count);
/**
 * Device `device`'s free and total memory and name. cudaMemGetInfo needs the device's primary context: when the
 * driver says that context was not active before the call, it is destroyed again (cudaDeviceReset), so a process
 * that only asks keeps no memory on the GPU; an active one (a model, a communicator, another library's work) is
 * left as it was. The query runs on a thread of its own, so the calling thread's current device does not change.
 * Where the driver's context state cannot be read, the context stays: later calls use it as they would have
 * created it, and it holds its few hundred MB until the process exits. Do not call this while another thread
 * starts using a device that has no context yet: the reset could take the context from under it.
 */
int gpt2_device_info(int device, GPT2DeviceInfo* out);

#ifdef __cplusplus
}
#endif

#endif /* GPT2_NATIVE_H */

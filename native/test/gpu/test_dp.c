/*
 * Two-rank data parallel check of one build of the C API (native/include/gpt2.h), with no Node: two processes
 * (fork) join one communicator, each runs forward_backward on its own micro-batch of a small random GPT-2, then
 * gpt2_allreduce_grads and gpt2_comm_allreduce_mean. Each rank compares the averaged gradients with a second model
 * of its own that accumulates both micro-batches with loss_scale 0.5 each, and the ranks compare their gradients'
 * bits (a hash) with each other. Then gpt2_comm_broadcast: rank 1 must receive rank 0's floats (an odd count). Rank 0 makes the id and hands it to rank 1 through a pipe, as the studio's parent
 * does. Exit status 0 when both ranks pass.
 *
 *   test_dp build/libgpt2_cuda.so --kind shm      two ranks on one GPU (or one per GPU), staging through the host
 *   test_dp build/libgpt2_cuda.so --kind nccl     one GPU per rank (needs 2 GPUs and an NCCL build)
 *   test_dp build/libgpt2_cpu.so --kind shm       the CPU engine
 *   ... --tcp PORT   the id travels over TCP on 127.0.0.1:PORT instead of a pipe, as between the studio's nodes (rank 0
 *                    listens, rank 1 connects), and each rank sets GPT2_STUDIO_LOCAL_RANK as the studio does
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../include/gpt2.h"

#define SYM(name) __typeof__(gpt2_##name)* name = (__typeof__(gpt2_##name)*)need(so, path, "gpt2_" #name)
/* gpt2_read and gpt2_write under other local names: read and write are the pipes' */

static void* need(void* so, const char* path, const char* name) {
  void* p = dlsym(so, name);
  if (!p) {
    fprintf(stderr, "%s: missing symbol %s\n", path, name);
    exit(3);
  }
  return p;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static double urand(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}

/* --tcp: rank 0 sends the id to rank 1 over a loopback TCP connection; returns 0 on success */
static int tcp_send_id(int port, const char* id, size_t n) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (s < 0) return 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr*)&a, sizeof a) || listen(s, 1)) return close(s), 1;
  int c = accept(s, NULL, NULL);
  close(s);
  if (c < 0) return 1;
  const int ok = write(c, id, n) == (ssize_t)n;
  close(c);
  return ok ? 0 : 1;
}

static int tcp_receive_id(int port, char* id, size_t n) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int tries = 0; tries < 300; tries++) { /* rank 0 may not listen yet: 30 s of retries */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0) return 1;
    if (connect(c, (struct sockaddr*)&a, sizeof a) == 0) {
      size_t got = 0;
      ssize_t k;
      while (got < n && (k = read(c, id + got, n - got)) > 0) got += (size_t)k;
      close(c);
      return got == n ? 0 : 1;
    }
    close(c);
    usleep(100000);
  }
  return 1;
}

static int run_rank(const char* path, const char* kind, int rank, int id_read, int id_write, int hash_write, int tcp_port) {
  void* so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!so) {
    fprintf(stderr, "rank %d: cannot load %s: %s\n", rank, path, dlerror());
    return 2;
  }
  SYM(last_error);
  SYM(comm_new_id);
  SYM(comm_create);
  SYM(comm_abort);
  SYM(comm_destroy);
  SYM(allreduce_grads);
  SYM(comm_allreduce_mean);
  SYM(comm_broadcast);
  SYM(create);
  SYM(destroy);
  SYM(num_parameters);
  __typeof__(gpt2_write)* write_buf = (__typeof__(gpt2_write)*)need(so, path, "gpt2_write");
  __typeof__(gpt2_read)* read_buf = (__typeof__(gpt2_read)*)need(so, path, "gpt2_read");
  SYM(forward_backward);
#define CHECK(call)                                                                      \
  do {                                                                                   \
    if ((call) != GPT2_OK) {                                                             \
      fprintf(stderr, "rank %d: %s failed: %s\n", rank, #call, last_error());            \
      if (comm) comm_abort(comm);                                                        \
      return 1;                                                                          \
    }                                                                                    \
  } while (0)
  GPT2Comm* comm = NULL;
  char id[GPT2_COMM_ID_BYTES];
  memset(id, 0, sizeof id);
  if (tcp_port > 0) {
    char lr[8];
    snprintf(lr, sizeof lr, "%d", rank);
    setenv("GPT2_STUDIO_LOCAL_RANK", lr, 1);
  }
  if (rank == 0) {
    CHECK(comm_new_id(kind, id));
    if (tcp_port > 0 ? tcp_send_id(tcp_port, id, sizeof id) : write(id_write, id, sizeof id) != (ssize_t)sizeof id) {
      fprintf(stderr, "rank 0: could not hand the id to rank 1\n");
      return 2;
    }
  } else if (tcp_port > 0 ? tcp_receive_id(tcp_port, id, sizeof id) : read(id_read, id, sizeof id) != (ssize_t)sizeof id) {
    fprintf(stderr, "rank 1: no id from rank 0\n");
    return 2;
  }
  /* the communicator first: it selects this rank's device for the models created next */
  CHECK(comm_create(id, rank, 2, 60000, &comm));
  const GPT2Config cfg = {.num_layers = 2, .num_heads = 3, .channels = 48, .max_seq_len = 40, .vocab_size = 301,
                          .padded_vocab_size = 320, .ln_eps = 1e-5f};
  GPT2 *M = NULL, *R = NULL;
  CHECK(create(&cfg, &M));
  CHECK(create(&cfg, &R));
  const size_t P = num_parameters(M);
  float* w = malloc(P * sizeof(float));
  for (size_t i = 0; i < P; i++) w[i] = (float)(0.1 * (urand() - 0.5));
  CHECK(write_buf(M, GPT2_BUF_PARAMS, 0, w, P));
  CHECK(write_buf(R, GPT2_BUF_PARAMS, 0, w, P));
  enum { B = 2, T = 33, N = B * T };
  int inp[2][N], tgt[2][N];
  for (int r = 0; r < 2; r++)
    for (int i = 0; i < N; i++) {
      inp[r][i] = (int)(urand() * cfg.vocab_size);
      tgt[r][i] = (int)(urand() * cfg.vocab_size);
    }
  float loss, l0, l1;
  CHECK(forward_backward(M, inp[rank], tgt[rank], NULL, B, T, 1.f, &loss));
  CHECK(allreduce_grads(M, comm));
  double mean_loss = loss;
  CHECK(comm_allreduce_mean(comm, &mean_loss, 1));
  CHECK(forward_backward(R, inp[0], tgt[0], NULL, B, T, 0.5f, &l0));
  CHECK(forward_backward(R, inp[1], tgt[1], NULL, B, T, 0.5f, &l1));
  float* g = malloc(P * sizeof(float));
  float* want = malloc(P * sizeof(float));
  CHECK(read_buf(M, GPT2_BUF_GRADS, 0, g, P));
  CHECK(read_buf(R, GPT2_BUF_GRADS, 0, want, P));
  double worst = 0, scale = 1e-30;
  for (size_t i = 0; i < P; i++) scale = fmax(scale, fabs(want[i]));
  for (size_t i = 0; i < P; i++) {
    const double d = fabs((double)g[i] - want[i]) / scale;
    if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
  }
  const double want_loss = 0.5 * ((double)l0 + l1), loss_err = fabs(mean_loss - want_loss) / fabs(want_loss);
  /* FNV-1a over the gradients' bytes: the ranks must hold the same bits */
  uint64_t h = 1469598103934665603ull;
  const unsigned char* bytes = (const unsigned char*)g;
  for (size_t i = 0; i < P * sizeof(float); i++) h = (h ^ bytes[i]) * 1099511628211ull;
  if (write(hash_write, &h, sizeof h) != (ssize_t)sizeof h) return 2;
  /* the broadcast: rank 0's values (i * 0.5 - 7) replace rank 1's (-1) */
  enum { NB = 100003 };
  float* bc = malloc(NB * sizeof(float));
  for (int i = 0; i < NB; i++) bc[i] = rank == 0 ? (float)i * 0.5f - 7.f : -1.f;
  CHECK(comm_broadcast(comm, bc, NB));
  int bc_bad = 0;
  for (int i = 0; i < NB; i++) bc_bad += bc[i] != (float)i * 0.5f - 7.f;
  free(bc);
  /* the mean of two micro-batches against their accumulation in one model: the same sums in another order */
  const int pass = worst < 1e-5 && loss_err < 1e-6 && bc_bad == 0;
  printf("rank %d (%.5s): gradients vs one-process accumulation max rel diff %.2e (tolerance 1e-05), mean loss %.7f vs %.7f, broadcast %s %s\n",
         rank, id, worst, mean_loss, want_loss, bc_bad ? "wrong" : "right", pass ? "ok" : "FAIL");
  fflush(stdout);
  destroy(M);
  destroy(R);
  comm_destroy(comm);
  free(w), free(g), free(want);
  return pass ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: %s LIB.so [--kind shm|nccl] [--tcp PORT]\n", argv[0]);
    return 2;
  }
  const char* kind = NULL;
  int tcp_port = 0;
  for (int i = 2; i + 1 < argc; i++) {
    if (!strcmp(argv[i], "--kind")) kind = argv[i + 1];
    if (!strcmp(argv[i], "--tcp")) tcp_port = atoi(argv[i + 1]);
  }
  int idp[2], hp[2];
  if (pipe(idp) || pipe(hp)) return 2;
  pid_t pid[2];
  for (int r = 0; r < 2; r++) {
    pid[r] = fork();
    if (pid[r] < 0) return 2;
    if (pid[r] == 0) {
      alarm(300); /* a rank that never finishes fails the check instead of hanging it */
      close(r == 0 ? idp[0] : idp[1]); /* rank 1's read ends when rank 0 exits without an id */
      close(hp[0]);
      exit(run_rank(argv[1], kind, r, idp[0], idp[1], hp[1], tcp_port));
    }
  }
  close(idp[0]), close(idp[1]), close(hp[1]);
  int failed = 0;
  for (int r = 0; r < 2; r++) {
    int st = 0;
    waitpid(pid[r], &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "rank %d: %s %d\n", r, WIFEXITED(st) ? "exit status" : "killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
      failed = 1;
    }
  }
  uint64_t h[2] = {0, 1};
  const int got = read(hp[0], &h[0], sizeof h[0]) == (ssize_t)sizeof h[0] && read(hp[0], &h[1], sizeof h[1]) == (ssize_t)sizeof h[1];
  if (!got || h[0] != h[1]) {
    printf("the ranks' averaged gradients differ (hashes %016llx, %016llx) FAIL\n", (unsigned long long)h[0], (unsigned long long)h[1]);
    failed = 1;
  } else {
    printf("both ranks hold the same gradient bits (hash %016llx) ok\n", (unsigned long long)h[0]);
  }
  printf("%s\n", failed ? "DATA PARALLEL FAILED" : "data parallel ok");
  return failed;
}

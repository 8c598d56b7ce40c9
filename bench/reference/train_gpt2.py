#!/usr/bin/env python3
"""PyTorch GPT-2 reference for the benchmarks (the training and sampling peer).

A small, self-contained GPT-2 written against PyTorch 1.13 (Debian's python3-torch):
token + position embedding, pre-LN blocks with causal self-attention (explicit masked
softmax), GELU (tanh), 4x MLP, final LayerNorm, lm_head tied to wte. GPT-2 init:
normal(0, 0.02), with every c_proj scaled by (2 * n_layer) ** -0.5.

It times `--steps` steps after `--warmup` untimed ones on random token batches and
prints ONE JSON line:
  {"mode", "tokens_per_step", "median_step_s", "tokens_per_sec", "steps", "torch_version", "threads", "blas"}

  train:   forward + cross-entropy + backward + clip_grad_norm_(1.0) + AdamW step + zero_grad
  forward: forward + cross-entropy under torch.no_grad()
"""

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import time


def _threads_from_argv(argv, default=2):
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return str(default)


# Debian's torch calls the system BLAS (OpenBLAS when installed), whose thread pool is sized from the
# environment when the library loads, not by torch.set_num_threads. Pin it before importing torch.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads_from_argv(sys.argv[1:]))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = n_head
        self.n_embd = n_embd
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        # (1, 1, block_size, block_size): True where a query may attend to a key.
        mask = torch.tril(torch.ones(block_size, block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, block_size, block_size), persistent=False)

    def forward(self, x):
        B, T, C = x.shape  # (B, T, C)
        nh, hs = self.n_head, C // self.n_head
        qkv = self.c_attn(x)  # (B, T, 3C)
        q, k, v = qkv.split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
        att = att.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)  # (B, nh, T, T)
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.c_proj(y)  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        h = F.gelu(self.c_fc(x), approximate="tanh")  # (B, T, 4C)
        return self.c_proj(h)  # (B, T, C)


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, n_embd, vocab, block_size):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head, block_size) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied

        proj_std = 0.02 * (2 * n_layer) ** -0.5
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=proj_std)
            elif name.endswith(".weight") and p.dim() >= 2:  # Linear weights, wte, wpe
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
            # LayerNorm weights keep their default of ones.

    def forward(self, idx, targets=None):
        B, T = idx.shape  # (B, T)
        assert T <= self.block_size, f"sequence length {T} exceeds block size {self.block_size}"
        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.h:
            x = block(x)  # (B, T, C)
        x = self.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T))  # (B*T, V), (B*T,)
        return logits, loss


def detect_blas():
    """Which BLAS this process loaded: 'openblas', 'mkl', 'blis', 'reference' (Debian's slow libblas3) or 'unknown'."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("openblas", "mkl", "blis"):
        if name in maps:
            return name
    if "/blas/libblas.so" in maps:
        return "reference"
    return "unknown"


def make_optimizer(model, lr, weight_decay):
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {"lr": lr, "betas": (0.9, 0.95), "eps": 1e-8}
    params = inspect.signature(torch.optim.AdamW).parameters
    # Plain single-tensor loop on CPU: fused kernels are CUDA-only (and absent in 1.13's AdamW).
    if "fused" in params:
        kwargs["fused"] = False
    if "foreach" in params:
        kwargs["foreach"] = False
    return torch.optim.AdamW(groups, **kwargs)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-layer", type=int, default=12)
    p.add_argument("--n-head", type=int, default=12)
    p.add_argument("--n-embd", type=int, default=768)
    p.add_argument("--vocab", type=int, default=50304)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", choices=["train", "forward"], default="train")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    if args.seq > args.block_size:
        p.error(f"--seq ({args.seq}) must not exceed --block-size ({args.block_size})")
    if args.n_embd % args.n_head != 0:
        p.error(f"--n-embd ({args.n_embd}) must be divisible by --n-head ({args.n_head})")
    if args.steps < 1:
        p.error("--steps must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def main(argv):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    model = GPT(args.n_layer, args.n_head, args.n_embd, args.vocab, args.block_size)
    B, T = args.batch, args.seq
    # One fixed pool of random batches, drawn up front so token generation is not timed.
    n_batches = min(args.warmup + args.steps, 8)
    data = torch.randint(0, args.vocab, (n_batches, B, T + 1), dtype=torch.long)  # (N, B, T+1)

    if args.mode == "train":
        model.train()
        optimizer = make_optimizer(model, lr=6e-4, weight_decay=0.1)

        def step(i):
            batch = data[i % n_batches]
            x, y = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
            _, loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.item()
    else:
        model.eval()

        def step(i):
            batch = data[i % n_batches]
            x, y = batch[:, :-1], batch[:, 1:]  # (B, T), (B, T)
            with torch.no_grad():
                _, loss = model(x, y)
            return loss.item()

    for i in range(args.warmup):
        step(i)

    times = []
    loss = float("nan")
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss = step(args.warmup + i)
        times.append(time.perf_counter() - t0)

    blas = detect_blas()
    if blas == "reference":
        print(
            "train_gpt2.py: warning: torch is using the reference BLAS (libblas3), which is ~30x slower; "
            "install libopenblas0-pthread for a fair peer",
            file=sys.stderr,
        )

    if not math.isfinite(loss):
        print(f"train_gpt2.py: non-finite loss {loss}", file=sys.stderr)
        return 1

    tokens_per_step = B * T
    median_step_s = statistics.median(times)
    result = {
        "mode": args.mode,
        "tokens_per_step": tokens_per_step,
        "median_step_s": median_step_s,
        "min_step_s": min(times),
        "tokens_per_sec": tokens_per_step / median_step_s,
        "steps": args.steps,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

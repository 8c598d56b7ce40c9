#!/usr/bin/env python3
"""PyTorch GPT-2 sampling reference for the benchmarks (the peer of the native engine's KV-cache decode).

A GPT-2 with random weights (GPT-2 init) and a preallocated KV cache: one prefill over a random prompt, then one
forward per new token over that token alone, attending to the cached keys and values; greedy argmax over the
logits of the real vocabulary. The same work as the studio's decodeStep.

It times each single-token step after `--warmup` untimed ones and prints ONE JSON line:
  {"mode": "sample", "ms_per_token", "median_step_s", "tokens", "prompt", "batch", "torch_version", "threads", "blas"}
"""

import argparse
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


# OpenBLAS sizes its thread pool from the environment when it loads: pin it before importing torch.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads_from_argv(sys.argv[1:]))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.attn_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x, k_cache, v_cache, pos):
        B, S, C = x.shape  # (B, S, C): S new positions starting at pos
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)  # 3 x (B, S, C)
        q = q.view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)
        k_cache[:, :, pos:pos + S] = k.view(B, S, nh, hs).transpose(1, 2)  # cache (B, nh, maxT, hs)
        v_cache[:, :, pos:pos + S] = v.view(B, S, nh, hs).transpose(1, 2)
        L = pos + S
        keys, values = k_cache[:, :, :L], v_cache[:, :, :L]  # (B, nh, L, hs)
        att = (q @ keys.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, S, L)
        if S > 1:  # query i sits at pos + i and sees keys 0 .. pos + i
            mask = torch.ones(S, L, dtype=torch.bool).tril(diagonal=pos)
            att = att.masked_fill(~mask, float("-inf"))
        y = F.softmax(att, dim=-1) @ values  # (B, nh, S, hs)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, S, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, n_embd, vocab, padded_vocab, block_size):
        super().__init__()
        self.vocab = vocab
        self.wte = nn.Embedding(padded_vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        proj_std = 0.02 * (2 * n_layer) ** -0.5
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=proj_std)
            elif p.dim() >= 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    def forward(self, idx, caches, pos):
        B, S = idx.shape  # (B, S)
        x = self.wte(idx) + self.wpe(torch.arange(pos, pos + S))  # (B, S, C)
        for block, (kc, vc) in zip(self.h, caches):
            x = block(x, kc, vc, pos)
        x = self.ln_f(x[:, -1, :])  # (B, C): the last new position only
        return x @ self.wte.weight[: self.vocab].t()  # (B, V) over the real vocabulary


def detect_blas():
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("openblas", "mkl", "blis"):
        if name in maps:
            return name
    return "reference" if "/blas/libblas.so" in maps else "unknown"


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-layer", type=int, default=12)
    p.add_argument("--n-head", type=int, default=12)
    p.add_argument("--n-embd", type=int, default=768)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--padded-vocab", type=int, default=50304)
    p.add_argument("--block-size", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=16, help="prompt length (prefilled, not timed)")
    p.add_argument("--tokens", type=int, default=64, help="timed single-token steps")
    p.add_argument("--warmup", type=int, default=4, help="untimed single-token steps first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    if args.prompt + args.warmup + args.tokens > args.block_size:
        p.error("prompt + warmup + tokens must fit in the block size")

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = GPT(args.n_layer, args.n_head, args.n_embd, args.vocab, args.padded_vocab, args.block_size).eval()
    B, hs = args.batch, args.n_embd // args.n_head
    total = args.prompt + args.warmup + args.tokens
    caches = [
        (torch.zeros(B, args.n_head, total, hs), torch.zeros(B, args.n_head, total, hs)) for _ in range(args.n_layer)
    ]  # per layer: keys and values (B, nh, T, hs)
    times = []
    with torch.inference_mode():
        idx = torch.randint(0, args.vocab, (B, args.prompt))
        logits = model(idx, caches, 0)  # prefill
        pos = args.prompt
        for i in range(args.warmup + args.tokens):
            nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1) greedy
            t0 = time.perf_counter()
            logits = model(nxt, caches, pos)
            dt = time.perf_counter() - t0
            pos += 1
            if i >= args.warmup:
                times.append(dt)
    med = statistics.median(times)
    print(json.dumps({
        "mode": "sample", "ms_per_token": med * 1000, "median_step_s": med, "tokens": args.tokens, "prompt": args.prompt,
        "batch": B, "torch_version": torch.__version__, "threads": torch.get_num_threads(), "blas": detect_blas(),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

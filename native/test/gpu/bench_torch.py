#!/usr/bin/env python3
"""The PyTorch peer of the CUDA engine's training benchmark (native/test/bench_step.c).

GPT-2 as build-nanogpt trains it on a GPU:
- scaled_dot_product_attention (flash) with is_causal;
- bf16 autocast, TF32 matmuls, fused AdamW with the decay groups;
- torch.compile;
- vocabulary padded to 50304, weight tying, and GPT-2 init.

It times `--steps` steps after `--warmup` untimed ones on random tokens, and prints ONE JSON line:
  {"peer", "device", "dtype", "compile", "B", "T", "params", "median_step_s", "tokens_per_sec", "flops_per_token",
   "tflops", "torch_version"}, and with --peak-tflops P also "peak_tflops" and "mfu" (tflops / P). The FLOPs per token
are build-nanogpt's count, as native/test/bench_step.c counts them: 6 params + 12 L C T.

Each step is zero_grad, forward + cross-entropy, backward, clip_grad_norm_(1.0), then AdamW.
Without a GPU (or with --device cpu) it runs as given, which is only useful as a check of the script itself.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH, L):
        super().__init__()
        self.NH = NH
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)
        std = 0.02 * (2 * L) ** -0.5
        for lin in (self.c_attn, self.c_fc):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        for lin in (self.c_proj, self.mlp_proj):
            nn.init.normal_(lin.weight, std=std)
            nn.init.zeros_(lin.bias)

    def attn(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, NH, T, hs)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch 1.x (a CPU check of this script): the explicit masked softmax
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, NH, C, maxT, V):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.h = nn.ModuleList(Block(C, NH, L) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)

    def forward(self, idx, targets):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.h:
            x = b(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied lm_head
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--channels", type=int, default=768)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--padded", type=int, default=50304)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--B", type=int, default=16)
    p.add_argument("--T", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtype", choices=["bf16", "tf32", "fp32"], default="bf16")
    p.add_argument("--compile", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--peak-tflops", type=float, default=0.0)
    a = p.parse_args()

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if a.dtype in ("bf16", "tf32") and hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("high")
    torch.manual_seed(1337)
    model = GPT(a.layers, a.heads, a.channels, a.seq, a.padded).to(dev)
    params = sum(t.numel() for t in model.parameters())
    decay = [t for t in model.parameters() if t.dim() >= 2]
    no_decay = [t for t in model.parameters() if t.dim() < 2]
    extra = {"fused": True} if cuda and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=6e-4, betas=(0.9, 0.95), eps=1e-8, **extra)
    compiled = bool(a.compile) and hasattr(torch, "compile")
    step_model = torch.compile(model) if compiled else model

    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, a.vocab, (a.B, a.T), generator=g).to(dev)
    y = torch.randint(0, a.vocab, (a.B, a.T), generator=g).to(dev)
    def forward(m):
        if a.dtype == "bf16" and cuda:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                return m(x, y)
        return m(x, y)

    times = []
    compile_error = None
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        try:
            loss = forward(step_model)
        except Exception as e:  # torch.compile fails at its first call (no Triton, no compiler): measure eager instead
            if not compiled or s > 0:
                raise
            compile_error = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            print("torch.compile failed (%s); measuring eager mode" % compile_error, file=sys.stderr)
            compiled, step_model = False, model
            loss = forward(step_model)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if s >= a.warmup:
            times.append(dt)
    med = statistics.median(times)
    flops_per_token = 6.0 * params + 12.0 * a.layers * a.channels * a.T
    tflops = a.B * a.T / med * flops_per_token / 1e12
    extra_out = {"peak_tflops": a.peak_tflops, "mfu": round(tflops / a.peak_tflops, 4)} if a.peak_tflops > 0 else {}
    print(json.dumps({
        "peer": "pytorch build-nanogpt settings", "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if cuda else ""),
        "dtype": a.dtype, "compile": compiled, "fused_adamw": bool(extra), "B": a.B, "T": a.T, "params": params,
        "median_step_s": round(med, 6), "tokens_per_sec": round(a.B * a.T / med, 1), "flops_per_token": flops_per_token,
        "tflops": round(tflops, 3), "last_loss": round(float(loss), 5), "torch_version": torch.__version__, **extra_out,
        **({"compile_error": compile_error} if compile_error else {}),
    }))


if __name__ == "__main__":
    main()

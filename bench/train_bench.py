#!/usr/bin/env python3
"""Training speed of an equivalent Python torch 1.13 loop: the Python half of train_bench.sh.

The same Llama layout as gemkit (RMSNorm, RoPE, SwiGLU, tied embeddings), written the way a
Python user would (nn.Module, F.linear through nn.Linear, the fused attention op where torch
1.13 has it), the same batch, sequence length, random tokens, AdamW, warm-up and FLOP formula
as bench/train_bench.cpp. Prints one JSON line.

usage: /usr/bin/python3 train_bench.py --size 15m|50m [--steps N] [--batch B] [--seq T]"""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {"15m": dict(d=384, ff=1024, layers=6, heads=6), "50m": dict(d=640, ff=1728, layers=9, heads=10)}
VOCAB = 8000


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Block(nn.Module):
    def __init__(self, d, ff, heads):
        super().__init__()
        self.heads, self.hd = heads, d // heads
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        self.q_proj, self.k_proj = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.v_proj, self.o_proj = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
        self.down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        h = self.input_layernorm(x)
        q, k, v = (p(h).view(B, T, self.heads, self.hd).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if hasattr(F, "_scaled_dot_product_attention"):  # torch 1.13's private fused op
            a = F._scaled_dot_product_attention(q, k, v, None, 0.0, False, True)[0]
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(B, T, D))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, d, ff, layers, heads):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, d)
        self.layers = nn.ModuleList(Block(d, ff, heads) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.hd = d // heads
        for name, p in self.named_parameters():  # Hugging Face Llama init, as gemkit's
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        T = ids.shape[1]
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return F.linear(self.norm(x), self.embed_tokens.weight)  # tied output projection


def matmul_peak_gflops(n=2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="15m", choices=SIZES)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = SIZES[a.size]
    model = Llama(**cfg)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    peak = matmul_peak_gflops()
    warmup, timed, loss = 2, 0.0, None
    for step in range(warmup + a.steps):
        ids = torch.randint(VOCAB, (a.batch, a.seq))
        t0 = time.perf_counter()
        opt.zero_grad()
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        if step >= warmup:
            timed += time.perf_counter() - t0
    tps = a.steps * a.batch * a.seq / timed
    flops_per_token = 6.0 * params + 12.0 * cfg["layers"] * a.seq * cfg["d"]
    gflops = tps * flops_per_token / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "python-torch", "size": a.size, "params": params, "batch": a.batch, "seq": a.seq,
                      "steps": a.steps, "tokens_per_s": round(tps, 1), "gflops": round(gflops, 1),
                      "peak_gflops": round(peak, 1), "mfu": round(gflops / peak, 3), "peak_rss_mb": round(rss, 1),
                      "last_loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Dev check: next_token_logprobs.mjs (llama.cpp) against an independent torch llama forward.

    /usr/bin/python3 tests/llama_cpp/check_logprobs.py [--dest DIR] [--work DIR] [--threads N]

Writes tiny random llama GGUF files with make_tiny_gguf.py (tied and untied embeddings, with and
without tokenizer.ggml.pre), runs next_token_logprobs.mjs on random token sequences (lengths 1 to
600, special ids included; 600 spans two decode batches and exceeds llama.context_length 512), and compares with log_softmax of a float64 torch forward of the same
weights in Hugging Face layout (RMSNorm, rotate-halves RoPE on unpermuted q/k, GQA, SwiGLU). A
second torch forward on the GGUF layout (permuted q/k, RoPE on interleaved pairs, as llama.cpp
does) must agree with the first to ~1e-12, which checks the q/k permutation rule of docs/design/formats.md.

Then the same model stored as Q8_0 and as Q4_0 (quantized with check_quantize_ref.py's numpy
reimplementation of ggml) against the torch forward of the dequantized weights, with and without
emulating llama.cpp's CPU quantization of the matmul inputs to Q8_0 blocks.

Reports max |delta log p| (all entries, and entries with log p > -10), top-1 agreement and mean
KL(reference || llama.cpp), for llama.cpp with an F32 KV cache and no flash attention (the tool's
default) and with an F16 KV cache + flash attention (llama.cpp's own defaults). Exit status 1
when a figure is out of tolerance. Needs /usr/bin/python3 with torch and numpy, node, and
install.sh's DEST.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_quantize_ref as cq  # noqa: E402
import make_tiny_gguf as mk  # noqa: E402

torch.set_default_dtype(torch.float64)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_halves(x, pos, base):
    """Hugging Face Llama RoPE: rotate the two halves of each head. x: [T, H, hd]."""
    hd = x.shape[-1]
    inv = (1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))).to(x.dtype)
    ang = pos[:, None] * inv[None, :]                       # [T, hd/2]
    cos = torch.cat([ang.cos(), ang.cos()], -1)[:, None, :]
    sin = torch.cat([ang.sin(), ang.sin()], -1)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def rope_interleaved(x, pos, base):
    """llama.cpp LLAMA_ROPE_TYPE_NORM: rotate pairs (x[2i], x[2i+1]) by pos * base^(-2i/hd)."""
    hd = x.shape[-1]
    inv = (1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))).to(x.dtype)
    ang = (pos[:, None] * inv[None, :])[:, None, :]          # [T, 1, hd/2]
    xe, xo = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = xe * ang.cos() - xo * ang.sin()
    out[..., 1::2] = xe * ang.sin() + xo * ang.cos()
    return out


def q8_0_activations(x):
    """Activations as llama.cpp's CPU matmul sees them next to Q8_0/Q4_0 weights: rows quantized to
    Q8_0 blocks of 32 by the SIMD quantize_row_q8_0 (q = round-half-even(x * 127/amax), fp16 d)."""
    b = x.reshape(-1, 32).float()
    amax = b.abs().max(1).values
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax)).float()
    q = torch.round(b * inv[:, None])
    d = (amax / 127.0).half().to(x.dtype)
    return (q.to(x.dtype) * d[:, None]).reshape(x.shape)


def forward(weights, names, rope, tokens, cfg, dtype=torch.float64, act_q8=False):
    """Causal llama forward -> log-probs [T, vocab]. names maps roles to weight names.
    act_q8: quantize the inputs of every weight matmul to Q8_0, as llama.cpp does for quantized weights."""
    W = {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in weights.items()}

    def mm(h, wt):
        return (q8_0_activations(h) if act_q8 else h) @ wt.T

    d, nh, nkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = d // nh
    T = len(tokens)
    pos = torch.arange(T, dtype=dtype)
    x = W[names["embed"]][torch.tensor(tokens)]
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)
    for i in range(cfg["n_layers"]):
        n = {k: v.format(i=i) for k, v in names.items()}
        h = rms_norm(x, W[n["attn_norm"]], cfg["rms_eps"])
        q = mm(h, W[n["q"]]).view(T, nh, hd)
        k = mm(h, W[n["k"]]).view(T, nkv, hd)
        v = mm(h, W[n["v"]]).view(T, nkv, hd)
        q, k = rope(q, pos, cfg["rope_base"]), rope(k, pos, cfg["rope_base"])
        rep = nh // nkv  # GQA: query head j reads kv head j // rep
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        att = torch.einsum("thd,shd->hts", q, k) / hd ** 0.5 + mask
        o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(T, d)
        x = x + mm(o, W[n["o"]])
        h = rms_norm(x, W[n["ffn_norm"]], cfg["rms_eps"])
        x = x + mm(torch.nn.functional.silu(mm(h, W[n["gate"]])) * mm(h, W[n["up"]]), W[n["down"]])
    x = rms_norm(x, W[names["norm"]], cfg["rms_eps"])
    head = W[names["head"]] if names["head"] in W else W[names["embed"]]
    return torch.log_softmax(mm(x, head), -1).double()


HF = dict(embed="model.embed_tokens.weight", attn_norm="model.layers.{i}.input_layernorm.weight",
          q="model.layers.{i}.self_attn.q_proj.weight", k="model.layers.{i}.self_attn.k_proj.weight",
          v="model.layers.{i}.self_attn.v_proj.weight", o="model.layers.{i}.self_attn.o_proj.weight",
          ffn_norm="model.layers.{i}.post_attention_layernorm.weight",
          gate="model.layers.{i}.mlp.gate_proj.weight", up="model.layers.{i}.mlp.up_proj.weight",
          down="model.layers.{i}.mlp.down_proj.weight", norm="model.norm.weight", head="lm_head.weight")
GG = dict(embed="token_embd.weight", attn_norm="blk.{i}.attn_norm.weight", q="blk.{i}.attn_q.weight",
          k="blk.{i}.attn_k.weight", v="blk.{i}.attn_v.weight", o="blk.{i}.attn_output.weight",
          ffn_norm="blk.{i}.ffn_norm.weight", gate="blk.{i}.ffn_gate.weight", up="blk.{i}.ffn_up.weight",
          down="blk.{i}.ffn_down.weight", norm="output_norm.weight", head="output.weight")


def dequantize(qtype, raw, shape):
    """ggml block formats back to float: Q8_0 q * fp16(d); Q4_0 (nibble - 8) * fp16(d)."""
    if qtype == "q8_0":
        b = np.frombuffer(raw, np.uint8).reshape(-1, 34)
        d = b[:, :2].copy().view(np.float16).astype(np.float64)
        q = b[:, 2:].copy().view(np.int8).astype(np.float64)
    else:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 18)
        d = b[:, :2].copy().view(np.float16).astype(np.float64)
        qs = b[:, 2:].astype(np.int64)
        q = np.concatenate([qs & 15, qs >> 4], 1).astype(np.float64) - 8
    return (q * d).reshape(shape)


def sequences(seed):
    rng = np.random.default_rng(seed)
    seqs = [[1], [1, 2], [0, 1, 2, 259, 258, 3]]
    for n in (17, 64, 255, 256, 300, 600):  # 600: two decode batches (512 + 88)
        seqs.append([int(t) for t in rng.integers(0, mk.CONFIG["vocab"], n)])
    seqs.append([int(t) for t in rng.integers(0, mk.CONFIG["vocab"], 40)] * 3)  # repeated content
    return seqs


def run_llama(args, model, seq_file, out, extra):
    cmd = ["node", os.path.join(HERE, "next_token_logprobs.mjs"), model, seq_file, out,
           "--threads", str(args.threads)] + (["--dest", args.dest] if args.dest else []) + extra
    t0 = time.time()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1]), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dest", default=None, help="install.sh DEST (default: the tool's own default)")
    ap.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="llama_cpp_check.")
    os.makedirs(work, exist_ok=True)
    cfg = mk.CONFIG
    seqs = sequences(7)
    seq_file = os.path.join(work, "sequences.json")
    with open(seq_file, "w") as fh:
        json.dump({"sequences": seqs}, fh)
    ok = True
    for variant, (untied, with_pre, seed) in {"tied": (False, True, 0), "tied, no tokenizer.ggml.pre": (False, False, 1),
                                              "untied": (True, True, 2)}.items():
        w = mk.make_weights(seed, untied=untied)
        model = os.path.join(work, "tiny-%d.gguf" % seed)
        mk.write_gguf(model, w, with_pre=with_pre)
        gw = mk.gguf_tensors(w)
        refs = []
        perm_err = 0.0
        f32_floor = 0.0
        for s in seqs:
            a = forward(w, HF, rope_halves, s, cfg)
            b = forward(gw, GG, rope_interleaved, s, cfg)
            perm_err = max(perm_err, (a - b).abs().max().item())
            f32_floor = max(f32_floor, (forward(w, HF, rope_halves, s, cfg, torch.float32) - a).abs().max().item())
            refs.append(a.numpy())
        ref = np.concatenate(refs)
        if perm_err > 1e-9:
            ok = False
        print("%s: HF-layout forward vs GGUF-layout forward (permuted q/k, interleaved RoPE): max |d| = %.2e;"
              " torch float32 vs float64 (noise floor of fp32 arithmetic): max |d log p| = %.2e"
              % (variant, perm_err, f32_floor))
        # tolerances: (max |d log p|, mean KL, top-1 agreement where the reference margin is > 1e-4)
        for label, extra, (tol, kl_tol, top1_min) in (
                ("f32 KV, no flash attn", [], (1e-3, 1e-6, 1.0)),
                ("f16 KV + flash attn", ["--kv-type", "f16", "--flash-attn"], (0.25, 1e-4, 0.99))):
            out = os.path.join(work, "lp-%d-%s.bin" % (seed, extra[1] if extra else "f32"))
            meta, secs = run_llama(args, model, seq_file, out, extra)
            got = np.fromfile(out, dtype="<f4").astype(np.float64)
            assert meta["n_vocab"] == cfg["vocab"] and meta["positions"] == [len(s) for s in seqs], meta
            got = got.reshape(-1, cfg["vocab"])
            assert got.shape == ref.shape, (got.shape, ref.shape)
            d = np.abs(got - ref)
            big = ref > -10
            top1 = float(np.mean(got.argmax(1) == ref.argmax(1)))
            kl = float(np.mean(np.sum(np.exp(ref) * (ref - got), 1)))
            # positions where the reference top-2 are within 1e-4 may legitimately swap
            srt = np.sort(ref, 1)
            clear = (srt[:, -1] - srt[:, -2]) > 1e-4
            top1_clear = float(np.mean(got.argmax(1)[clear] == ref.argmax(1)[clear]))
            good = d.max() < tol and kl < kl_tol and top1_clear >= top1_min
            ok &= good
            print("  llama.cpp %-22s positions %d: max|d log p| %.2e (log p > -10: %.2e), top-1 %.4f "
                  "(clear margins: %.4f), mean KL %.2e, %.1f s  %s"
                  % (label, got.shape[0], d.max(), d[big].max(), top1, top1_clear, kl, secs,
                     "ok" if good else "FAIL (tolerances %g, %g, %g)" % (tol, kl_tol, top1_min)))
        # determinism: same run again, bit-identical
        out2 = os.path.join(work, "lp-%d-f32-again.bin" % seed)
        run_llama(args, model, seq_file, out2, [])
        same = open(out2, "rb").read() == open(os.path.join(work, "lp-%d-f32.bin" % seed), "rb").read()
        ok &= same
        print("  rerun bit-identical: %s" % same)
    # Quantized files: llama.cpp on Q8_0 / Q4_0 weights against the torch forward of the same
    # weights dequantized. What remains is llama.cpp's CPU path quantizing the activations to Q8_0
    # blocks for the matrix products (and the quantization loss itself, shown against float weights).
    w = mk.make_weights(0)
    gw = mk.gguf_tensors(w)
    ref_f = np.concatenate([forward(gw, GG, rope_interleaved, s, cfg).numpy() for s in seqs])
    for qtype in ("q8_0", "q4_0"):
        model = os.path.join(work, "tiny-0-%s.gguf" % qtype)
        mk.write_gguf(model, w, qtype=qtype)
        deq = {k: (dequantize(qtype, cq.PY[qtype](v), v.shape) if v.ndim == 2 else v)
               for k, v in gw.items()}
        ref_q = np.concatenate([forward(deq, GG, rope_interleaved, s, cfg).numpy() for s in seqs])
        ref_qa = np.concatenate([forward(deq, GG, rope_interleaved, s, cfg, act_q8=True).numpy() for s in seqs])
        out = os.path.join(work, "lp-0-%s.bin" % qtype)
        meta, secs = run_llama(args, model, seq_file, out, [])
        got = np.fromfile(out, dtype="<f4").astype(np.float64).reshape(-1, cfg["vocab"])

        def kl(p, q):
            return float(np.mean(np.sum(np.exp(p) * (p - q), 1)))

        def top1(p, q):
            return float(np.mean(p.argmax(1) == q.argmax(1)))
        good = kl(ref_qa, got) < 1e-3 and top1(ref_qa, got) >= 0.99
        ok &= good
        print("%s GGUF, llama.cpp vs torch on the dequantized weights: with Q8_0 activations emulated "
              "max|d log p| %.2e, top-1 %.4f, mean KL %.2e; without: max|d| %.2e, top-1 %.4f, KL %.2e  %s"
              % (qtype, np.abs(got - ref_qa).max(), top1(ref_qa, got), kl(ref_qa, got),
                 np.abs(got - ref_q).max(), top1(ref_q, got), kl(ref_q, got), "ok" if good else "FAIL"))
        print("  quantization loss: KL(float weights || llama.cpp) %.2e; KL(float || dequantized, torch) %.2e"
              % (kl(ref_f, got), kl(ref_f, ref_q)))
    print("check_logprobs: %s (work dir %s)" % ("PASS" if ok else "FAIL", work))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

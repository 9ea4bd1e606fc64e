#!/usr/bin/env python3
"""Independent reference for gemkit's transformer (llm.c-style parity check).

Written from the math with torch.nn.functional only (no transformers, no safetensors package,
nothing shared with the C++ code), so that a bug in gemkit cannot hide in both. Reads the model
and inputs the C++ test wrote, and writes logits, loss, every parameter's gradient and the
losses of N AdamW steps.

usage: reference_model.py CONFIG.json MODEL.safetensors INPUTS.safetensors OUT.safetensors
CONFIG.json: {"family": "decoder"|"encoder", "head": "causal_lm"|"masked_lm"|"classification",
              model sizes..., "head_dim", "rope_theta",
              "rope_scaling": {"type": "default"|"linear"|"llama3", "factor", "low_freq_factor",
                               "high_freq_factor", "original_max_position_embeddings"},
              "adamw": {"lr", "beta1", "beta2", "eps", "weight_decay", "steps"}}
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}
NAMES = {v: k for k, v in DTYPES.items()}


# ----- safetensors, from the format: u64 header length, JSON header, raw little-endian data --

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=dtype) \
            if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


# ----- building blocks ------------------------------------------------------------------------

def rms_norm(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def inv_freq(d, theta, scaling):
    """The RoPE inverse frequencies [d/2], with the config's rope_scaling applied.

    Written from the Hugging Face description of the scaled types, one frequency at a time in
    Python floats (not gemkit's tensor formulation):
      linear: inv_freq / factor.
      llama3: wavelen = 2 pi / inv_freq, against old_ctx / low_freq_factor (above: inv_freq /
              factor) and old_ctx / high_freq_factor (below: unchanged); in between
              smooth = (old_ctx / wavelen - low) / (high - low) and
              (1 - smooth) * inv_freq / factor + smooth * inv_freq.
    """
    base = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    kind = scaling["type"]
    if kind == "default":
        return base
    factor = scaling["factor"]
    if kind == "linear":
        return torch.tensor([f / factor for f in base.tolist()], dtype=torch.float32)
    assert kind == "llama3", kind
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_ctx = scaling["original_max_position_embeddings"]
    out = []
    for f in base.tolist():
        wavelen = 2 * math.pi / f
        if wavelen > old_ctx / low:
            out.append(f / factor)
        elif wavelen < old_ctx / high:
            out.append(f)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float32)


def rope(x, positions, freq):
    """x [B, H, T, d]; Hugging Face 'rotate half' pairs dimension i with i + d/2."""
    d = x.shape[-1]
    freqs = positions.float()[..., None] * freq                # [B, T, d/2]
    emb = torch.cat([freqs, freqs], dim=-1)                    # [B, T, d]
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def attention(q, k, v, allowed):
    """q, k, v [B, H, T, d]; allowed [B, T, S] bool. Softmax(q k^T / sqrt(d)) v, masked."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1) @ v


def heads(x, n, d):
    B, T, _ = x.shape
    return x.view(B, T, n, d).transpose(1, 2)


def merge(x):
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


# ----- the two families -----------------------------------------------------------------------

def decoder_forward(P, c, ids, mask):
    B, T = ids.shape
    H, KV = c["num_attention_heads"], c["num_key_value_heads"]
    d = c["head_dim"]  # may differ from hidden_size / H: q_proj maps hidden_size to H * d
    eps = c["rms_norm_eps"]
    freq = inv_freq(d, c["rope_theta"], c["rope_scaling"])
    valid = mask.bool()
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # counts real tokens (left padding)
    allowed = valid[:, None, :] & (positions[:, None, :] <= positions[:, :, None])

    h = P["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        x = rms_norm(h, P[p + "input_layernorm.weight"], eps)
        q = F.linear(x, P[p + "self_attn.q_proj.weight"], P.get(p + "self_attn.q_proj.bias"))
        k = F.linear(x, P[p + "self_attn.k_proj.weight"], P.get(p + "self_attn.k_proj.bias"))
        v = F.linear(x, P[p + "self_attn.v_proj.weight"], P.get(p + "self_attn.v_proj.bias"))
        q = rope(heads(q, H, d), positions, freq)
        k = rope(heads(k, KV, d), positions, freq)
        v = heads(v, KV, d)
        k = k.repeat_interleave(H // KV, dim=1)  # query head j uses kv head j // (H / KV)
        v = v.repeat_interleave(H // KV, dim=1)
        h = h + F.linear(merge(attention(q, k, v, allowed)), P[p + "self_attn.o_proj.weight"])
        x = rms_norm(h, P[p + "post_attention_layernorm.weight"], eps)
        gate = F.silu(F.linear(x, P[p + "mlp.gate_proj.weight"]))
        h = h + F.linear(gate * F.linear(x, P[p + "mlp.up_proj.weight"]), P[p + "mlp.down_proj.weight"])
    h = rms_norm(h, P["model.norm.weight"], eps)

    if c["head"] == "causal_lm":
        w = P["model.embed_tokens.weight"] if c["tie_word_embeddings"] else P["lm_head.weight"]
        return F.linear(h, w)
    # classification: the last real token of each row
    index = torch.arange(T)[None].expand(B, T)
    last = torch.where(valid, index, torch.full_like(index, -1)).amax(1).clamp(min=0)
    return F.linear(h[torch.arange(B), last], P["score.weight"])


def encoder_forward(P, c, ids, mask, token_types):
    B, T = ids.shape
    H = c["num_attention_heads"]
    D = c["hidden_size"]
    d = D // H
    eps = c["layer_norm_eps"]
    pre = "bert." if c["bert_prefix"] else ""
    allowed = mask.bool()[:, None, :].expand(B, T, T)

    def ln(x, name):
        return F.layer_norm(x, (D,), P[name + ".weight"], P[name + ".bias"], eps)

    def lin(x, name):
        return F.linear(x, P[name + ".weight"], P[name + ".bias"])

    e = pre + "embeddings."
    h = P[e + "word_embeddings.weight"][ids] + P[e + "position_embeddings.weight"][torch.arange(T)][None] \
        + P[e + "token_type_embeddings.weight"][token_types]
    h = ln(h, e + "LayerNorm")
    for i in range(c["num_hidden_layers"]):
        p = pre + "encoder.layer.%d." % i
        q = heads(lin(h, p + "attention.self.query"), H, d)
        k = heads(lin(h, p + "attention.self.key"), H, d)
        v = heads(lin(h, p + "attention.self.value"), H, d)
        a = lin(merge(attention(q, k, v, allowed)), p + "attention.output.dense")
        h = ln(h + a, p + "attention.output.LayerNorm")           # post-LN
        m = lin(F.gelu(lin(h, p + "intermediate.dense")), p + "output.dense")
        h = ln(h + m, p + "output.LayerNorm")

    if c["head"] == "masked_lm":
        t = ln(F.gelu(lin(h, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
        return F.linear(t, P[e + "word_embeddings.weight"], P["cls.predictions.bias"])
    pooled = torch.tanh(lin(h[:, 0], pre + "pooler.dense"))
    return lin(pooled, "classifier")


def loss_of(c, logits, labels):
    if c["head"] == "causal_lm":  # position t predicts token t + 1
        V = logits.shape[-1]
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    if c["head"] == "masked_lm":
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    return F.cross_entropy(logits, labels)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        c = json.load(f)
    P = read_safetensors(sys.argv[2])
    inputs = read_safetensors(sys.argv[3])
    for t in P.values():
        t.requires_grad_(True)
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]

    def forward():
        if c["family"] == "decoder":
            return decoder_forward(P, c, ids, mask)
        return encoder_forward(P, c, ids, mask, inputs["token_type_ids"])

    adam = c["adamw"]
    opt = torch.optim.AdamW(list(P.values()), lr=adam["lr"], betas=(adam["beta1"], adam["beta2"]),
                            eps=adam["eps"], weight_decay=adam["weight_decay"])
    out, losses = {}, []
    for step in range(adam["steps"]):
        opt.zero_grad()
        logits = forward()
        loss = loss_of(c, logits, labels)
        loss.backward()
        if step == 0:  # the gradients and outputs of the initial parameters
            out["logits"] = logits.detach()
            out["loss"] = loss.detach().reshape(1)
            for name, t in P.items():
                out["grad." + name] = t.grad.detach().clone()
        losses.append(loss.item())
        opt.step()
    out["losses"] = torch.tensor(losses, dtype=torch.float64)
    write_safetensors(sys.argv[4], out)


if __name__ == "__main__":
    main()

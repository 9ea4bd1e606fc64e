#!/usr/bin/python3
"""Writes a tiny random llama-architecture GGUF v3 file (F32) that llama.cpp loads (dev check).

    /usr/bin/python3 tests/llama_cpp/make_tiny_gguf.py OUT.gguf [--seed 0] [--no-pre] [--untied]
                                                       [--qtype f32|q8_0|q4_0]

Model: vocab 260 (a minimal SentencePiece-style list: <unk>, <s>, </s>, the 256 byte tokens
<0x00>..<0xFF>, and "\u2581"), dim 64, 2 layers, 4 heads, 2 kv heads (GQA), ffn 128, RoPE base
10000, RMSNorm eps 1e-5, tied embeddings (no output.weight) unless --untied.

Next to OUT.gguf it writes OUT.npz with the same weights in Hugging Face Llama layout (q/k NOT
permuted, [out, in] matrices) plus the config, for an independent torch reference forward
(check_logprobs.py). The q and k rows are permuted per head for the GGUF exactly as
docs/formats say (view (n_head, 2, head_dim/2, in), swap axes 1 and 2), so llama.cpp's RoPE on
interleaved pairs reproduces Hugging Face's rotate-halves RoPE.

--qtype q8_0|q4_0 stores the 2-D tensors quantized (with check_quantize_ref.py's numpy
reimplementation of ggml's reference quantizers; the npz keeps the unquantized weights).
Only numpy is needed. Not part of gemkit; the GGUF writer here is deliberately independent of the
project's C++ exporter.
"""
import argparse
import struct
import sys

import numpy as np

CONFIG = dict(vocab=260, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn=128, rope_base=10000.0,
              rms_eps=1e-5, context_length=512)

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
GGML_F32 = 0
GGML_TYPES = {"f32": 0, "q4_0": 2, "q8_0": 8}
FILE_TYPES = {"f32": 0, "q4_0": 2, "q8_0": 7}  # llama_ftype: ALL_F32, MOSTLY_Q4_0, MOSTLY_Q8_0
ALIGN = 32


def vocab_tokens():
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["\u2581"]
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-1.0]
    types = [2, 3, 3] + [6] * 256 + [1]  # unknown, control, control, bytes, normal
    return toks, scores, types


def make_weights(seed=0, cfg=CONFIG, untied=False):
    """Random weights in Hugging Face Llama layout (float32)."""
    rng = np.random.default_rng(seed)
    d, f, v = cfg["dim"], cfg["ffn"], cfg["vocab"]
    hd = d // cfg["n_heads"]
    kvd = hd * cfg["n_kv_heads"]

    def mat(out, inp, scale=1.0):
        return (rng.standard_normal((out, inp)) * scale / np.sqrt(inp)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (0.3 * rng.standard_normal((v, d))).astype(np.float32)}
    for i in range(cfg["n_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = mat(d, d, 2.0)
        w[p + "self_attn.k_proj.weight"] = mat(kvd, d, 2.0)
        w[p + "self_attn.v_proj.weight"] = mat(kvd, d)
        w[p + "self_attn.o_proj.weight"] = mat(d, d)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = mat(f, d)
        w[p + "mlp.up_proj.weight"] = mat(f, d)
        w[p + "mlp.down_proj.weight"] = mat(d, f)
    w["model.norm.weight"] = norm(d)
    if untied:
        w["lm_head.weight"] = mat(v, d, 4.0)
    return w


def permute_qk(wt, n_head):
    """HF rotate-halves layout -> llama.cpp interleaved-pairs layout (rows of each head)."""
    out, inp = wt.shape
    hd = out // n_head
    return wt.reshape(n_head, 2, hd // 2, inp).swapaxes(1, 2).reshape(out, inp).copy()


def gguf_tensors(w, cfg=CONFIG):
    """GGUF name -> float32 array (PyTorch [out, in] layout; dims are reversed when written)."""
    t = {"token_embd.weight": w["model.embed_tokens.weight"]}
    for i in range(cfg["n_layers"]):
        p, b = "model.layers.%d." % i, "blk.%d." % i
        t[b + "attn_norm.weight"] = w[p + "input_layernorm.weight"]
        t[b + "attn_q.weight"] = permute_qk(w[p + "self_attn.q_proj.weight"], cfg["n_heads"])
        t[b + "attn_k.weight"] = permute_qk(w[p + "self_attn.k_proj.weight"], cfg["n_kv_heads"])
        t[b + "attn_v.weight"] = w[p + "self_attn.v_proj.weight"]
        t[b + "attn_output.weight"] = w[p + "self_attn.o_proj.weight"]
        t[b + "ffn_norm.weight"] = w[p + "post_attention_layernorm.weight"]
        t[b + "ffn_gate.weight"] = w[p + "mlp.gate_proj.weight"]
        t[b + "ffn_up.weight"] = w[p + "mlp.up_proj.weight"]
        t[b + "ffn_down.weight"] = w[p + "mlp.down_proj.weight"]
    t["output_norm.weight"] = w["model.norm.weight"]
    if "lm_head.weight" in w:
        t["output.weight"] = w["lm_head.weight"]
    return t


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def raw(self, fmt, *vals):
        self.buf += struct.pack("<" + fmt, *vals)

    def string(self, s):
        b = s.encode("utf-8")
        self.raw("Q", len(b))
        self.buf += b

    def kv(self, key, vtype, value, elem_type=None):
        self.string(key)
        self.raw("I", vtype)
        if vtype == ARRAY:
            self.raw("IQ", elem_type, len(value))
            for x in value:
                self.scalar(elem_type, x)
        else:
            self.scalar(vtype, value)

    def scalar(self, vtype, x):
        fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
               U64: "Q", I64: "q", F64: "d"}
        if vtype == STRING:
            self.string(x)
        else:
            self.raw(fmt[vtype], x)


def write_gguf(path, w, cfg=CONFIG, with_pre=True, name="gemkit-tiny-random", drop_keys=(), qtype="f32"):
    """Writes the GGUF; drop_keys leaves metadata keys out (to probe what llama.cpp requires).
    qtype q8_0 / q4_0 stores the 2-D tensors with check_quantize_ref.py's numpy quantizer (1-D
    norms stay F32)."""
    tensors = gguf_tensors(w, cfg)
    toks, scores, types = vocab_tokens()
    assert len(toks) == cfg["vocab"]
    hd = cfg["dim"] // cfg["n_heads"]
    meta = [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, name),
        ("general.file_type", U32, FILE_TYPES[qtype]),
        ("general.alignment", U32, ALIGN),
        ("llama.context_length", U32, cfg["context_length"]),
        ("llama.embedding_length", U32, cfg["dim"]),
        ("llama.block_count", U32, cfg["n_layers"]),
        ("llama.feed_forward_length", U32, cfg["ffn"]),
        ("llama.attention.head_count", U32, cfg["n_heads"]),
        ("llama.attention.head_count_kv", U32, cfg["n_kv_heads"]),
        ("llama.rope.dimension_count", U32, hd),
        ("llama.rope.freq_base", F32, cfg["rope_base"]),
        ("llama.attention.layer_norm_rms_epsilon", F32, cfg["rms_eps"]),
        ("llama.vocab_size", U32, cfg["vocab"]),
        ("tokenizer.ggml.model", STRING, "llama"),
    ]
    if with_pre:
        meta.append(("tokenizer.ggml.pre", STRING, "default"))
    meta += [
        ("tokenizer.ggml.tokens", ARRAY, toks, STRING),
        ("tokenizer.ggml.scores", ARRAY, scores, F32),
        ("tokenizer.ggml.token_type", ARRAY, types, I32),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.add_eos_token", BOOL, False),
    ]
    if qtype != "f32":
        meta.append(("general.quantization_version", U32, 2))
    meta = [m for m in meta if m[0] not in drop_keys]
    wr = Writer()
    wr.buf += b"GGUF"
    wr.raw("I", 3)
    wr.raw("QQ", len(tensors), len(meta))
    for m in meta:
        wr.kv(*m)
    offset = 0
    blobs = []
    for tname, arr in tensors.items():
        arr = np.ascontiguousarray(arr, dtype="<f4")
        wr.string(tname)
        wr.raw("I", arr.ndim)
        for dim in reversed(arr.shape):  # fastest-varying first
            wr.raw("Q", dim)
        if qtype != "f32" and arr.ndim == 2:
            import check_quantize_ref  # same folder; numpy reimplementation of ggml's quantizers
            wr.raw("I", GGML_TYPES[qtype])
            blob = check_quantize_ref.PY[qtype](arr)
        else:
            wr.raw("I", GGML_F32)
            blob = arr.tobytes()
        wr.raw("Q", offset)
        pad = (-len(blob)) % ALIGN
        blobs.append(blob + b"\0" * pad)
        offset += len(blob) + pad
    wr.buf += b"\0" * ((-len(wr.buf)) % ALIGN)
    with open(path, "wb") as fh:
        fh.write(wr.buf)
        for blob in blobs:
            fh.write(blob)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pre", action="store_true", help="omit tokenizer.ggml.pre")
    ap.add_argument("--untied", action="store_true", help="write a separate output.weight")
    ap.add_argument("--qtype", choices=sorted(GGML_TYPES), default="f32", help="type of the 2-D tensors")
    a = ap.parse_args()
    w = make_weights(a.seed, untied=a.untied)
    write_gguf(a.out, w, with_pre=not a.no_pre, qtype=a.qtype)
    npz = (a.out[:-5] if a.out.endswith(".gguf") else a.out) + ".npz"
    np.savez(npz, **w, **{"config." + k: np.array(v) for k, v in CONFIG.items()})
    print("wrote %s and %s" % (a.out, npz), file=sys.stderr)


if __name__ == "__main__":
    main()

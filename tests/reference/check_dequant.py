"""gemkit's GGUF dequantization against the `gguf` package's (llama.cpp's Python reference),
bit for bit, for every type the importer reads.

1. Random blocks of every type, with edge values in the scale fields (zero, negative zero,
   subnormal, the largest half, negative scales and minimums), written to a GGUF file with
   gguf.GGUFWriter and dequantized by gemkit (tests/tools/gguf_dequant_dump) and by
   gguf.quants.dequantize.
2. Every tensor of a real file (--gguf: SmolLM2-135M-Instruct Q4_1, which holds Q4_1, Q8_0 and
   F32 tensors) the same way.
3. The imported Hugging Face folder of that file (--imported): every tensor equals the reference
   dequantization, q/k rows put back from llama.cpp's interleaved order.

Run with the project's virtual environment (.venv, requirements.txt):
  .venv/bin/python tests/reference/check_dequant.py --tool build/tests/gguf_dequant_dump \
      --work /tmp/dq [--gguf FILE.gguf --imported DIR]
"""
import argparse
import importlib.metadata
import json
import os
import subprocess
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants
from safetensors.numpy import load_file

# type -> (values per block, bytes per block, byte offsets of its fp16 scale/min fields)
LAYOUT = {
    Q.F32: (1, 4, []),
    Q.F16: (1, 2, [0]),
    Q.BF16: (1, 2, []),
    Q.Q8_0: (32, 34, [0]),
    Q.Q4_0: (32, 18, [0]),
    Q.Q4_1: (32, 20, [0, 2]),
    Q.Q5_0: (32, 22, [0]),
    Q.Q5_1: (32, 24, [0, 2]),
    Q.Q4_K: (256, 144, [0, 2]),
    Q.Q5_K: (256, 176, [0, 2]),
    Q.Q6_K: (256, 210, [208]),
}
EDGE_HALVES = np.array([0.0, -0.0, 65504.0, -65504.0, 2.0**-24, -(2.0**-24), 2.0**-14, 1.0, -1.0, 0.5], np.float16)


def random_blocks(qtype, rng, rows=16, blocks_per_row=4):
    elems, nbytes, half_fields = LAYOUT[qtype]
    if elems == 1:  # plain types: as many values per row as a 32-value block type has
        blocks_per_row *= 32
    raw = rng.integers(0, 256, size=(rows * blocks_per_row, nbytes), dtype=np.uint8)
    if qtype == Q.F32:  # finite floats, with zeros of both signs and a subnormal
        vals = rng.standard_normal(raw.size // 4).astype(np.float32)
        vals[:4] = [0.0, -0.0, 1e-40, -3.4e38]
        raw = vals.view(np.uint8).reshape(raw.shape)
    elif qtype == Q.BF16:  # any bit pattern but NaN
        bits = raw.view(np.uint16)
        nan = ((bits & 0x7F80) == 0x7F80) & ((bits & 0x7F) != 0)
        bits[nan] &= 0x80FF
    elif qtype == Q.F16:  # finite halves: random scales times normal values, then edge values
        vals = (rng.standard_normal(raw.size // 2) * 10.0 ** rng.uniform(-6, 4, raw.size // 2)).astype(np.float16)
        vals[: len(EDGE_HALVES)] = EDGE_HALVES
        raw = vals.view(np.uint8).reshape(raw.shape)
    else:  # block types: realistic scales (1e-4 .. 1, either sign), edge values in some blocks
        for off in half_fields:
            scales = (rng.uniform(1e-4, 1.0, raw.shape[0]) * rng.choice([-1.0, 1.0], raw.shape[0])).astype(np.float16)
            n_edge = min(len(EDGE_HALVES), raw.shape[0])
            scales[:n_edge] = np.roll(EDGE_HALVES, off)[:n_edge]
            raw[:, off:off + 2] = scales.view(np.uint8).reshape(-1, 2)
        raw[-1, :] = 0xFF  # every quant bit set
        raw[-2, :] = 0x00
    return raw.reshape(rows, blocks_per_row * nbytes), elems * blocks_per_row


def dump(tool, gguf_path, out_path):
    subprocess.run([tool, gguf_path, out_path], check=True)
    return load_file(out_path)


def same_bits(name, got, ref):
    ref = np.ascontiguousarray(ref, dtype=np.float32)
    got = np.ascontiguousarray(got, dtype=np.float32)
    if got.shape != ref.shape:
        sys.exit(f"FAIL {name}: shape {got.shape} vs reference {ref.shape}")
    diff = got.view(np.uint32) != ref.view(np.uint32)
    if diff.any():
        i = np.argwhere(diff)[0]
        sys.exit(f"FAIL {name}: {int(diff.sum())} of {diff.size} values differ in bits; first at {tuple(i)}: "
                 f"gemkit {got[tuple(i)]!r} vs gguf {ref[tuple(i)]!r}")
    return diff.size


def check_random(tool, work):
    rng = np.random.default_rng(20261206)
    path = os.path.join(work, "random_blocks.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    expected = {}
    for qtype in LAYOUT:
        raw, cols = random_blocks(qtype, rng)
        name = f"random.{qtype.name.lower()}"
        writer.add_tensor(name, raw, raw_dtype=qtype)
        expected[name] = quants.dequantize(raw, qtype).reshape(raw.shape[0], cols)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    got = dump(tool, path, os.path.join(work, "random_blocks.safetensors"))
    for name, ref in expected.items():
        n = same_bits(name, got[name], ref)
        print(f"ok {name}: {n} values bit-identical")


def reference_tensors(gguf_path):
    reader = gguf.GGUFReader(gguf_path)
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = (quants.dequantize(t.data, t.tensor_type).reshape(shape), t.tensor_type.name)
    return reader, out


def check_real_file(tool, work, gguf_path):
    _, ref = reference_tensors(gguf_path)
    got = dump(tool, gguf_path, os.path.join(work, "real_file.safetensors"))
    counts = {}
    total = 0
    for name, (values, tname) in ref.items():
        total += same_bits(name, got[name], values)
        counts[tname] = counts.get(tname, 0) + 1
    print(f"ok {os.path.basename(gguf_path)}: {len(ref)} tensors ({counts}), {total} values bit-identical")
    return ref


def hf_name(gguf_name):
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    _, layer, rest = gguf_name.split(".", 2)
    block = {"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
             "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
             "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight",
             "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
             "ffn_down.weight": "mlp.down_proj.weight"}[rest]
    return f"model.layers.{layer}.{block}"


def check_imported(gguf_path, ref, folder):
    config = json.load(open(os.path.join(folder, "config.json")))
    got = load_file(os.path.join(folder, "model.safetensors"))
    if set(got) != {hf_name(n) for n in ref}:
        sys.exit(f"FAIL {folder}: tensor names differ from the GGUF's: {sorted(set(got) ^ {hf_name(n) for n in ref})[:5]}")
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    total = 0
    for name, (values, _) in ref.items():
        kind = name.split(".")[2] if name.startswith("blk.") else ""
        if kind in heads:  # llama.cpp's row order (h, j, s) back to Hugging Face's (h, s, j)
            n_head = heads[kind]
            rows, cols = values.shape
            values = values.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)
        total += same_bits(hf_name(name), got[hf_name(name)], values)
    print(f"ok imported {folder}: {len(got)} tensors, {total} values bit-identical to the gguf package's dequantization")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--gguf")
    ap.add_argument("--imported")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    print(f"gguf {importlib.metadata.version('gguf')}, numpy {np.__version__}")
    check_random(a.tool, a.work)
    if a.gguf:
        ref = check_real_file(a.tool, a.work, a.gguf)
        if a.imported:
            check_imported(a.gguf, ref, a.imported)
    print("dequantization parity: all checks passed")


if __name__ == "__main__":
    main()

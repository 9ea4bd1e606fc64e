#!/usr/bin/python3
"""Independent check of a gemkit PEFT LoRA export (used by tests/test_lora.cpp).

usage: peft_merge_check.py BASE_FOLDER ADAPTER_FOLDER MERGED_FOLDER

Reads safetensors with the standard library (json + struct) and torch.frombuffer only -- no
peft or safetensors package -- applies W + scale * B A (scale = lora_alpha / r, or
lora_alpha / sqrt(r) with use_rslora; docs/design/formats.md, PEFT section) to the base checkpoint, and
compares with the weights gemkit merged and saved, and one linear layer's adapter output
x W^T + scale x A^T B^T with x W_merged^T. Every other tensor must be unchanged. Exits 1 on
any mismatch.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_model import read_safetensors  # noqa: E402  (the stdlib reader of the parity reference)


def main():
    base_dir, adapter_dir, merged_dir = sys.argv[1:4]
    base = read_safetensors(os.path.join(base_dir, "model.safetensors"))
    merged = read_safetensors(os.path.join(merged_dir, "model.safetensors"))
    adapter = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    assert config["peft_type"] == "LORA", config["peft_type"]
    r, alpha = config["r"], config["lora_alpha"]
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r

    prefix, suffix_a = "base_model.model.", ".lora_A.weight"
    paths = sorted(k[len(prefix):-len(suffix_a)] for k in adapter if k.endswith(suffix_a))
    assert len(adapter) == 2 * len(paths), "every lora_A needs its lora_B"
    worst_w = worst_y = 0.0
    torch.manual_seed(0)
    for path in paths:
        a = adapter[prefix + path + suffix_a].double()
        b = adapter[prefix + path + ".lora_B.weight"].double()
        w = base[path + ".weight"].double()
        assert a.shape == (r, w.shape[1]) and b.shape == (w.shape[0], r), (path, a.shape, b.shape, w.shape)
        expected = w + scale * (b @ a)
        worst_w = max(worst_w, (expected - merged[path + ".weight"].double()).abs().max().item())
        x = torch.randn(3, w.shape[1], dtype=torch.float64)
        y_adapter = x @ w.T + scale * (x @ a.T) @ b.T
        y_merged = x @ merged[path + ".weight"].double().T
        worst_y = max(worst_y, (y_adapter - y_merged).abs().max().item())
    adapted = {p + ".weight" for p in paths}
    assert set(base) == set(merged), "merged checkpoint has different tensors"
    for name in base:
        if name not in adapted and not torch.equal(base[name], merged[name]):
            print(f"FAIL: {name} changed but has no adapter")
            return 1
    print(f"checked {len(paths)} layers: merged weight max err {worst_w:.3g}, linear output max err {worst_y:.3g}")
    if worst_w > 1e-5 or worst_y > 1e-5:
        print("FAIL: gemkit's merged weights disagree with W + scale * B A")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

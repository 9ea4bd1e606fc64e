#!/usr/bin/env python3
"""Round trips of SmolLM2-135M-Instruct trained by gemkit, verified by the real peers (run with
the project's .venv python: torch 2.x, transformers, peft, tokenizers, safetensors).

    check_smollm2_roundtrip.py --base DIR --work WORK --gemkit BIN --logits-tool BIN [--data data/mini]

WORK holds the two short runs of tests/reference/train_smollm2_roundtrip.sh (the ctest fixture
smollm2_trained): WORK/full (full fine-tuning) and WORK/lora (LoRA, PEFT folder WORK/lora/adapter,
merged folder WORK/lora/merged). DIR is the base model folder both runs started from.

1. Full fine-tuning: `gemkit export hf WORK/full/<latest> -o WORK/full_hf`, loaded by
   transformers' AutoModelForCausalLM.from_pretrained(WORK/full_hf, dtype=float32, eager
   attention), gives the logits gemkit computes on the trained checkpoint itself
   (tests/tools/roundtrip_logits on WORK/full/<latest>).
2. LoRA: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(DIR), WORK/lora/adapter)
   gives the logits of gemkit's LoRA model (DIR with the adapter folder attached as LoRA hooks,
   roundtrip_logits --adapter). Also: transformers on WORK/lora/merged (the run's merged folder)
   against the same gemkit LoRA logits.
Sanity checks that the comparisons are not vacuous: the trained logits differ from the base
model's (training moved the weights / the adapter's B is not zero) by far more than the bound.

Inputs: three rows of 96 tokens of mini-suite validation text (law, stem, general) tokenized with
DIR's tokenizer.json through the `tokenizers` package. rel(a, b) = max|a - b| / max|b| over all
logits, b being the peer's. Every measured value is printed beside its bound; exit code 1 on any
failure.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

LOGITS_REL = 1e-4  # bound of both round trips
MOVED_REL = 1e-3  # the trained model must differ from the base by at least this much
ROWS, LENGTH = 3, 96

failures = []


def check(label, value, bound, at_least=False):
    ok = value >= bound if at_least else value <= bound
    relation = ">=" if at_least else "<="
    print(f"  {label}: {value:.3e} (bound {relation} {bound:.0e}){'' if ok else '  FAIL'}", flush=True)
    if not ok:
        failures.append(label)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max()).item()


def run(cmd):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def input_ids(base, data):
    tok = Tokenizer.from_file(os.path.join(base, "tokenizer.json"))
    rows = []
    for domain in ["law", "stem", "general"][:ROWS]:
        with open(os.path.join(data, domain, "validation.jsonl"), encoding="utf-8") as f:
            text = " ".join(json.loads(line)["text"] for line in f)
        ids = tok.encode(text, add_special_tokens=False).ids
        if len(ids) < LENGTH:
            raise SystemExit(f"{data}/{domain}/validation.jsonl: only {len(ids)} tokens, need {LENGTH}")
        rows.append(ids[:LENGTH])
    return rows


def gemkit_logits(tool, work, name, model, ids, adapter=None):
    inputs = os.path.join(work, "roundtrip_inputs.json")
    with open(inputs, "w") as f:
        json.dump({"input_ids": ids}, f)
    out = os.path.join(work, f"gemkit_logits_{name}.safetensors")
    cmd = [tool, "--model", model, "--inputs", inputs, "--out", out]
    if adapter:
        cmd += ["--adapter", adapter]
    run(cmd)
    return load_file(out)["logits"]


def hf_model(folder):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return m.eval()


@torch.no_grad()
def hf_logits(model, ids):
    return model(input_ids=torch.tensor(ids)).logits.float()


def latest_checkpoint(run_dir):
    with open(os.path.join(run_dir, "latest")) as f:
        return os.path.join(run_dir, f.read().strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--gemkit", required=True)
    ap.add_argument("--logits-tool", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "data", "mini"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    import peft
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
    ids = input_ids(a.base, a.data)
    print(f"inputs: {len(ids)} rows x {len(ids[0])} tokens")

    base_model = hf_model(a.base)
    base = hf_logits(base_model, ids)

    # 1. Full fine-tuning -> export hf -> transformers.
    ckpt = latest_checkpoint(os.path.join(a.work, "full"))
    exported = os.path.join(a.work, "full_hf")
    run([a.gemkit, "export", "hf", ckpt, "-o", exported, "--force"])
    ours = gemkit_logits(a.logits_tool, a.work, "full", ckpt, ids)
    theirs = hf_logits(hf_model(exported), ids)
    print(f"full fine-tuning: gemkit on {ckpt} vs transformers on {exported}")
    check("logits rel (full, exported hf)", rel(ours, theirs), LOGITS_REL)
    check("trained vs base logits rel (full; weights moved)", rel(theirs, base), MOVED_REL, at_least=True)

    # 2. LoRA -> PEFT adapter folder -> peft on the base.
    from peft import PeftModel

    adapter = os.path.join(a.work, "lora", "adapter")
    ours = gemkit_logits(a.logits_tool, a.work, "lora", a.base, ids, adapter=adapter)
    peft_model = PeftModel.from_pretrained(base_model, adapter).eval()
    theirs = hf_logits(peft_model, ids)
    print(f"LoRA: gemkit {a.base} + {adapter} vs PeftModel.from_pretrained(base, adapter)")
    check("logits rel (LoRA, PEFT adapter)", rel(ours, theirs), LOGITS_REL)
    check("adapted vs base logits rel (LoRA; adapter not zero)", rel(theirs, base), MOVED_REL, at_least=True)
    merged = os.path.join(a.work, "lora", "merged")
    theirs_merged = hf_logits(hf_model(merged), ids)
    check("logits rel (LoRA, merged folder in transformers)", rel(ours, theirs_merged), LOGITS_REL)

    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    print("all round-trip checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

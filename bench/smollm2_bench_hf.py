"""The transformers + peft half of bench/smollm2_bench.sh: training tokens/s and peak RSS of full
fine-tuning and LoRA on SmolLM2-135M-Instruct, written as a Python user would (a plain training
loop: AutoModelForCausalLM in float32, AdamW, labels = inputs so transformers shifts them; LoRA
through peft's get_peft_model), plus evaluation (no-grad forward) and greedy generation speed.
Same folder, batch, sequence length, data (the law texts of data/mini, tokenized with the folder's
tokenizer.json and packed into rows) and step count as the gemkit half. Prints one JSON line per
measurement.

usage: .venv/bin/python bench/smollm2_bench_hf.py MODEL_DIR --mode full|lora|eval|generate [--steps N] [--bf16]

--bf16: the forward and the loss under torch.autocast("cpu", bfloat16), weights and AdamW state
float32: the same mixed precision as gemkit's train.precision = "bf16".
"""
import contextlib
import argparse
import json
import resource
import time

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM


def rows(model_dir, batch, seq):
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    ids = []
    for line in open("data/mini/law/train.jsonl"):
        ids += tok.encode(json.loads(line)["text"]).ids + [2]
    n = batch * seq
    return [torch.tensor(ids[i:i + n]).view(batch, seq) for i in range(0, len(ids) - n, n)]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--mode", required=True, choices=["full", "lora", "eval", "generate"])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    precision = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
    data = rows(a.model_dir, a.batch, a.seq)
    out = {"impl": "transformers " + __import__("transformers").__version__ + " / torch " + torch.__version__,
           "mode": a.mode, "threads": torch.get_num_threads(),
           "precision": "bf16" if a.bf16 and a.mode != "generate" else "fp32"}
    if a.mode in ("full", "lora"):
        if a.mode == "lora":
            from peft import LoraConfig, get_peft_model
            model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=[
                "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
            out["impl"] += " + peft " + __import__("peft").__version__
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-5, weight_decay=0.0)
        times = []
        for step in range(a.steps):
            x = data[step % len(data)]
            t0 = time.perf_counter()
            with precision():
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - t0)
            print(f"step {step + 1}/{a.steps}: loss {loss.item():.4f}, {times[-1]:.1f} s", flush=True)
        steady = times[1:] if len(times) > 1 else times  # the first step pays for allocation
        out["tokens_per_s"] = a.batch * a.seq * len(steady) / sum(steady)
    elif a.mode == "eval":
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad(), precision():
            for x in data:  # every row of the law texts, as gemkit eval scores them all
                model(input_ids=x, labels=x)
        out["tokens_per_s"] = a.batch * a.seq * len(data) / (time.perf_counter() - t0)
    else:
        model.eval()
        x = data[0][:1, :32]
        with torch.no_grad():
            model.generate(x, max_new_tokens=4, do_sample=False)  # warm-up
            t0 = time.perf_counter()
            y = model.generate(x, max_new_tokens=64, min_new_tokens=64, do_sample=False)
        out["tokens_per_s"] = (y.shape[1] - x.shape[1]) / (time.perf_counter() - t0)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A BertForSequenceClassification fine-tune in gemkit, round-tripped through transformers
(run with the project's .venv python; requirements.txt).

    check_minilm_classifier.py prepare --minilm DIR --gemkit BIN [--work out/minilm]
    check_minilm_classifier.py check   --minilm DIR --gemkit BIN --model-outputs BIN
                                       [--recipe recipes/minilm/spam_ham_classifier.toml] [--work DIR]

prepare: the inputs of recipes/minilm/spam_ham_classifier.toml in WORK (default out/minilm, the
    recipe's paths): WORK/spam_ham_init, all-MiniLM-L6-v2 (a bare BertModel) as a
    BertForSequenceClassification folder (transformers puts the body under "bert." and draws the
    classifier, seed 0; num_labels and id2label are the task's labels from data/mini's manifest,
    tokenizer files copied), and the token shards of the suite task conversational/spam_ham
    (train and validation splits) made by `gemkit data prepare` with that folder's tokenizer.
check: prepare into WORK, run `gemkit train RECIPE` on it (paths overridden to WORK), then load
    the checkpoint the run ends with in transformers (AutoModelForSequenceClassification, no
    missing or unexpected tensors, id2label kept) and compare its logits on test e-mails
    (tokenized by the `tokenizers` package, padded batch with attention mask) with gemkit's
    (tests/tools/model_outputs). Also: the training loss fell, and the transformers model
    classifies the task's test split better than its majority baseline.
Relative difference: rel(a, b) = max|a - b| / max|b|, b = transformers' logits. Exit 1 on failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOMAIN, TASK = "conversational", "spam_ham"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
LOGITS_REL = 1e-5  # bound of the round trip; the measured value is printed
failures = []


def check(label, ok, detail):
    print(f"  {label}: {detail}{'' if ok else '  FAIL'}")
    if not ok:
        failures.append(label)


def task_labels(data_dir):
    with open(os.path.join(data_dir, "manifest.json")) as f:
        manifest = json.load(f)
    return manifest["domains"][DOMAIN]["tasks"][TASK]["labels"]


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"failed with code {result.returncode}: {' '.join(cmd)}")
    return result


def prepare(args):
    from transformers import BertForSequenceClassification

    labels = task_labels(args.data)
    init = os.path.join(args.work, "spam_ham_init")
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(0)  # the classifier's initial draw
    model = BertForSequenceClassification.from_pretrained(
        args.minilm, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, dtype=torch.float32)
    if os.path.isdir(init):
        shutil.rmtree(init)
    model.save_pretrained(init)
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(args.minilm, name), init)
    manifest = os.path.join(args.data, "manifest.json")
    for split in ("train", "validation"):
        run([args.gemkit, "data", "prepare", "--tokenizer", init, "--manifest", manifest,
             "--task", f"{DOMAIN}/{TASK}", "--split", split,
             "--out", os.path.join(args.work, f"{TASK}.{split}.h5"),
             os.path.join(args.data, DOMAIN, "tasks", f"{TASK}.{split}.jsonl")])
    return init, labels


def test_items(data_dir):
    with open(os.path.join(data_dir, DOMAIN, "tasks", f"{TASK}.test.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def encode_batch(tok, texts, seq_len):
    """[CLS] text [SEP] truncated to seq_len (as gemkit's classification loader frames a
    document), right-padded with [PAD]."""
    tok.no_padding()  # all-MiniLM-L6-v2's tokenizer.json pads to 128 itself
    tok.enable_truncation(seq_len)
    encodings = tok.encode_batch(texts)
    pad = tok.token_to_id("[PAD]")
    T = max(len(e.ids) for e in encodings)
    ids = [e.ids + [pad] * (T - len(e.ids)) for e in encodings]
    mask = [[1] * len(e.ids) + [0] * (T - len(e.ids)) for e in encodings]
    return ids, mask


def check_round_trip(args):
    from transformers import AutoModelForSequenceClassification

    init, labels = prepare(args)
    run_dir = os.path.join(args.work, "run")
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    run([args.gemkit, "train", args.recipe, "--out", run_dir, f"model.path={init}",
         f"train.data={os.path.join(args.work, TASK + '.train.h5')}",
         f"train.validation={os.path.join(args.work, TASK + '.validation.h5')}"])
    with open(os.path.join(run_dir, "latest")) as f:
        checkpoint = os.path.join(run_dir, f.read().strip())
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        metrics = [json.loads(line) for line in f]
    steps = [m for m in metrics if m.get("loss") is not None]
    with open(os.path.join(run_dir, "resolved_recipe.toml"), "rb") as f:
        seq_len = tomllib.load(f)["train"]["seq_len"]  # rows as long as training's
    print(f"gemkit train: {len(steps)} steps, checkpoint {checkpoint}, seq_len {seq_len}")
    first = sum(m["loss"] for m in steps[:5]) / 5
    last = sum(m["loss"] for m in steps[-5:]) / 5
    check("training loss fell (mean of first 5 steps -> last 5)", last < first, f"{first:.4f} -> {last:.4f}")

    model, info = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    model.eval()
    print(f"transformers loaded {type(model).__name__}")
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    check("transformers loads every tensor, none missing or unexpected", not bad, bad or "yes")
    check("id2label kept", [model.config.id2label[i] for i in range(len(labels))] == labels,
          str(model.config.id2label))

    tok = Tokenizer.from_file(os.path.join(checkpoint, "tokenizer.json"))
    items = test_items(args.data)
    # Logits of gemkit and transformers on the first 8 test e-mails, one padded batch.
    ids, mask = encode_batch(tok, [x["text"] for x in items[:8]], seq_len)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        inputs = os.path.join(tmp, "inputs.json")
        with open(inputs, "w") as f:
            json.dump({"input_ids": ids, "attention_mask": mask}, f)
        out = os.path.join(tmp, "outputs.safetensors")
        run([args.model_outputs, "--model", checkpoint, "--inputs", inputs, "--out", out])
        ours = load_file(out)["logits"].double()
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.double()
    diff = (ours - theirs).abs().max().item()
    rel = diff / theirs.abs().max().item()
    print(f"  logits of {len(ids)} test e-mails (lengths {[sum(m) for m in mask]}):")
    print(f"    transformers {theirs[:3].tolist()}\n    gemkit       {ours[:3].tolist()}")
    check("logits rel, gemkit vs transformers", rel <= LOGITS_REL, f"{rel:.3e} (max abs {diff:.3e}, bound {LOGITS_REL:.0e})")
    check("same predicted classes", torch.equal(ours.argmax(1), theirs.argmax(1)), str(theirs.argmax(1).tolist()))

    # The fine-tune is real: transformers' accuracy on the whole test split beats the majority class.
    correct, total = 0, 0
    gold = [labels.index(x["label"]) for x in items]
    with torch.no_grad():
        for start in range(0, len(items), 32):
            ids, mask = encode_batch(tok, [x["text"] for x in items[start:start + 32]], seq_len)
            pred = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.argmax(1)
            correct += sum(int(p) == g for p, g in zip(pred.tolist(), gold[start:start + 32]))
            total += len(ids)
    majority = max(gold.count(i) for i in range(len(labels))) / len(gold)
    check("test accuracy (transformers) above the majority baseline", correct / total > majority,
          f"{correct}/{total} = {correct / total:.3f}, majority {majority:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="which", required=True)
    for name in ("prepare", "check"):
        s = sub.add_parser(name)
        s.add_argument("--minilm", required=True, help="all-MiniLM-L6-v2 folder (BertModel)")
        s.add_argument("--gemkit", required=True, help="the gemkit binary")
        s.add_argument("--data", default=os.path.join(REPO, "data", "mini"))
        s.add_argument("--work", default=os.path.join(REPO, "out", "minilm"))
        if name == "check":
            s.add_argument("--model-outputs", required=True, help="tests/tools/model_outputs binary")
            s.add_argument("--recipe", default=os.path.join(REPO, "recipes", "minilm", "spam_ham_classifier.toml"))
    args = p.parse_args()
    args.work = os.path.abspath(args.work)
    if args.which == "prepare":
        prepare(args)
    else:
        check_round_trip(args)
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

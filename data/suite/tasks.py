"""Task files: classification and multiple-choice items, caps, baselines, headers.

Classification item: {"id", "text", "label", "split"}; multiple-choice item: {"id", "context",
"choices", "answer", "split"}. Baselines are computed on the test split: majority (the most
frequent train label or answer position, applied to every test item) and random choice
(expected score of a uniform random guess)."""
import collections
import os

from common import norm_key, rank_key, rng, squash, write_jsonl
from split import SPLITS

MAX_TEXT = 2000


def cap(items, salt, caps):
    """Keep at most caps[split] items per split, chosen by a stable hash order."""
    out = []
    for s in SPLITS:
        part = sorted((it for it in items if it["split"] == s), key=lambda it: rank_key(salt, it["id"]))
        out.extend(part[:caps.get(s, len(part))] if caps else part)
    return out


def mc_item(item_id, context, correct, pool, split, seed, k=4):
    """A multiple-choice item: `correct` plus k-1 distinct distractors drawn from `pool`."""
    r = rng("mc", seed, item_id)
    seen = {norm_key(correct)}
    distractors = []
    tries = 0
    while len(distractors) < k - 1 and tries < 50:
        tries += 1
        c = pool[r.randrange(len(pool))]
        key = norm_key(c)
        if key not in seen and c.strip():
            seen.add(key)
            distractors.append(c)
    if len(distractors) < k - 1:
        return None
    choices = distractors + [correct]
    r.shuffle(choices)
    return {"id": item_id, "context": context, "choices": choices, "answer": choices.index(correct),
            "split": split}


def _macro_f1(gold, pred, labels):
    f = []
    for lab in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred) if g == lab and p != lab)
        f.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(f) / len(f) if f else 0.0


def baselines(kind, items, labels):
    train = [it for it in items if it["split"] == "train"] or items
    test = [it for it in items if it["split"] == "test"]
    if kind == "classification":
        counts = collections.Counter(it["label"] for it in train)
        major = sorted(counts, key=lambda l: (-counts[l], l))[0]
        gold = [it["label"] for it in test]
        maj = _macro_f1(gold, [major] * len(gold), labels)
        # expected macro-F1 of a uniform random guess: class c with test share p gets
        # precision p and recall 1/L, so F1 = 2p(1/L)/(p + 1/L)
        n, L = len(gold), len(labels)
        rnd = 0.0
        for lab in labels:
            p = gold.count(lab) / n if n else 0.0
            rnd += 0.0 if p == 0 else 2 * p / L / (p + 1 / L)
        return {"majority": {"prediction": major, "macro_f1": round(maj, 4)},
                "random": {"macro_f1": round(rnd / L if L else 0.0, 4)}}
    counts = collections.Counter(it["answer"] for it in train)
    major = sorted(counts, key=lambda a: (-counts[a], a))[0]
    acc = sum(1 for it in test if it["answer"] == major) / len(test) if test else 0.0
    rnd = sum(1 / len(it["choices"]) for it in test) / len(test) if test else 0.0
    return {"majority": {"prediction": major, "accuracy": round(acc, 4)},
            "random": {"accuracy": round(rnd, 4)}}


def write_task(out_dir, name, kind, items, description, labels=None, sources=(), note=None):
    """Write <out_dir>/tasks/<name>.<split>.jsonl; return the manifest header."""
    seen, clean = set(), []
    for it in items:  # no item text in two splits, no duplicate items
        if kind == "classification":
            it = {"id": it["id"], "text": it["text"][:MAX_TEXT], "label": it["label"], "split": it["split"]}
            key = norm_key(it["text"])
        else:
            it = {"id": it["id"], "context": it["context"], "choices": it["choices"], "answer": it["answer"],
                  "split": it["split"]}
            key = norm_key(it["context"] + "\0" + it["choices"][it["answer"]])
        if key in seen:
            continue
        seen.add(key)
        clean.append(it)
    if kind == "classification":
        labels = sorted(labels or {it["label"] for it in clean})
    header = {"type": kind, "metric": "macro_f1" if kind == "classification" else "accuracy",
              "description": description, "sources": list(sources),
              "files": {}, "counts": {}}
    if labels:
        header["labels"] = labels
    for s in SPLITS:
        part = [it for it in clean if it["split"] == s]
        rel = "tasks/%s.%s.jsonl" % (name, s)
        write_jsonl(os.path.join(out_dir, rel), part)
        header["files"][s] = rel
        header["counts"][s] = len(part)
    header["baselines"] = baselines(kind, clean, labels or [])
    if header["counts"]["test"] < 300:
        header["note"] = note or "test split has fewer than 300 items: the source is too small"
    elif note:
        header["note"] = note
    return header

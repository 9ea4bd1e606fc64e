"""Deterministic document splits and deduplication.

Documents are ranked by sha256(salt, split key); the first round(n*test) keys go to test, the
next round(n*val) to validation, the rest to train. The split key is the document id unless a
source groups documents (all languages of one handbook page, both languages of one Bible
chapter), so related documents always share a split. Task items derived from a document reuse
its split, so no task test text appears in any training corpus."""
from common import norm_key, rank_key

SPLITS = ("train", "validation", "test")


def assign(keys, salt, test_frac, val_frac):
    """{key: split} for the given keys."""
    ranked = sorted(set(keys), key=lambda k: rank_key(salt, k))
    n = len(ranked)
    nt, nv = int(round(n * test_frac)), int(round(n * val_frac))
    out = {}
    for i, k in enumerate(ranked):
        out[k] = "test" if i < nt else "validation" if i < nt + nv else "train"
    return out


def split_docs(docs, salt, test_frac, val_frac):
    """Set d["split"] on every document (by its "key", default its "id"); returns docs ranked."""
    m = assign([d.get("key", d["id"]) for d in docs], salt, test_frac, val_frac)
    for d in docs:
        d["split"] = m[d.get("key", d["id"])]
    return sorted(docs, key=lambda d: rank_key(salt, d["id"]))


def dedup(docs, seen=None):
    """Drop documents whose normalised text was already seen (first occurrence wins)."""
    seen = set() if seen is None else seen
    out = []
    for d in docs:
        k = norm_key(d["text"])
        if k in seen:
            continue
        seen.add(k)
        out.append(d)
    return out

"""Checks a built suite (full or data/mini): every check returns human-readable problems.

- manifest: all eight domains (and cross/; in a full build also the probe, which has no training
  text) complete; every listed file exists and its sha256,
  size and record count match;
- corpus: records have id/text/domain/source, ids unique, text non-empty; no normalised text
  occurs twice anywhere (within a split, across splits, across domains);
- tasks: item fields and types, labels in the label list, answers in range, choices distinct,
  split field equal to the file's split, ids unique, no item text in two splits, no
  classification test text equal to a training document, passages (id DOC#n) only from documents
  of the same split; baselines and metric present; test >= 300 items or a note saying why."""
import json
import os

from common import DOMAINS, PROBES, norm_key, sha256_file
from split import SPLITS


def _jsonl(path, problems):
    rows = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                rows.append(json.loads(raw.decode("utf-8")))
            except (UnicodeDecodeError, ValueError) as e:
                problems.append("%s:%d: not UTF-8 JSON (%s)" % (path, i, e))
    return rows


def validate(root, require_all=True):
    problems = []
    mpath = os.path.join(root, "manifest.json")
    if not os.path.exists(mpath):
        return ["%s missing" % mpath]
    with open(mpath, encoding="utf-8") as f:
        suite = json.load(f)
    present = [d for d in DOMAINS + PROBES if d in suite.get("domains", {})]
    if require_all:
        for d in DOMAINS + ([] if suite.get("mini") else PROBES) + ["cross"]:
            if d not in suite.get("domains", {}):
                problems.append("domain %s missing from manifest" % d)
    text_home = {}   # norm key -> (domain, split, id)
    doc_split = {}   # domain -> {doc id: split}
    train_keys = set()
    for d in present + (["cross"] if "cross" in suite.get("domains", {}) else []):
        ddir = os.path.join(root, d)
        m = suite["domains"][d]
        if not os.path.exists(os.path.join(ddir, ".complete")):
            problems.append("%s: no .complete marker" % d)
        for rel, info in m.get("files", {}).items():
            p = os.path.join(ddir, rel)
            if not os.path.exists(p):
                problems.append("%s/%s listed in manifest but missing" % (d, rel))
                continue
            if sha256_file(p) != info["sha256"] or os.path.getsize(p) != info["bytes"]:
                problems.append("%s/%s: checksum or size differs from manifest" % (d, rel))
        if d == "cross":
            continue
        doc_split[d] = {}
        for s in SPLITS:
            p = os.path.join(ddir, "%s.jsonl" % s)
            if not os.path.exists(p):
                problems.append("%s/%s.jsonl missing" % (d, s))
                continue
            for r in _jsonl(p, problems):
                if set(r) != {"id", "text", "domain", "source"} or not isinstance(r.get("text"), str):
                    problems.append("%s/%s: bad record keys %s" % (d, s, sorted(r)))
                    continue
                if r["domain"] != d or not r["text"].strip():
                    problems.append("%s/%s/%s: wrong domain or empty text" % (d, s, r["id"]))
                if r["id"] in doc_split[d]:
                    problems.append("%s: document id %s appears twice" % (d, r["id"]))
                doc_split[d][r["id"]] = s
                k = norm_key(r["text"])
                if k in text_home:
                    problems.append("duplicate text: %s/%s/%s and %s/%s/%s" % ((d, s, r["id"]) + text_home[k]))
                else:
                    text_home[k] = (d, s, r["id"])
                if s == "train":
                    train_keys.add(k)
                    if d in PROBES:
                        problems.append("%s/train: a probe has no training text (%s)" % (d, r["id"]))
    all_docs = {i: s for dd in doc_split.values() for i, s in dd.items()}
    for tname, h in suite.get("tasks", {}).items():
        problems += _check_task(root, tname, h, train_keys, all_docs)
    return problems


def _check_task(root, tname, h, train_keys, all_docs):
    problems = []
    d = tname.split("/")[0]
    kind = h.get("type")
    if kind not in ("classification", "multiple_choice"):
        return ["%s: unknown type %r" % (tname, kind)]
    want_metric = "macro_f1" if kind == "classification" else "accuracy"
    if h.get("metric") != want_metric:
        problems.append("%s: metric %r, expected %s" % (tname, h.get("metric"), want_metric))
    b = h.get("baselines", {})
    for which in ("majority", "random"):
        v = b.get(which, {}).get(want_metric)
        if not isinstance(v, (int, float)) or not 0 <= v <= 1:
            problems.append("%s: %s baseline missing or out of range" % (tname, which))
    labels = h.get("labels")
    if kind == "classification" and (not labels or len(set(labels)) != len(labels) or len(labels) < 2):
        problems.append("%s: labels list missing, duplicated or fewer than two" % tname)
    ids, homes = set(), {}
    for s in SPLITS:
        p = os.path.join(root, d, "tasks", "%s.%s.jsonl" % (tname.split("/", 1)[1], s))
        if not os.path.exists(p):
            problems.append("%s: %s missing" % (tname, p))
            continue
        rows = _jsonl(p, problems)
        if len(rows) != h.get("counts", {}).get(s):
            problems.append("%s/%s: %d items, manifest says %s" % (tname, s, len(rows), h.get("counts", {}).get(s)))
        for r in rows:
            rid = r.get("id")
            if rid in ids:
                problems.append("%s: item id %s twice" % (tname, rid))
            ids.add(rid)
            if r.get("split") != s:
                problems.append("%s/%s: item %s has split %r" % (tname, s, rid, r.get("split")))
            if kind == "classification":
                if set(r) != {"id", "text", "label", "split"} or not isinstance(r.get("text"), str) or not r["text"].strip():
                    problems.append("%s/%s: bad item %s" % (tname, s, rid))
                    continue
                if not isinstance(r["label"], str) or r["label"] not in labels:
                    problems.append("%s/%s: item %s label %r not in labels" % (tname, s, rid, r.get("label")))
                key = norm_key(r["text"])
                if s == "test" and key in train_keys:
                    problems.append("%s: test item %s equals a training document" % (tname, rid))
            else:
                ch = r.get("choices")
                if set(r) != {"id", "context", "choices", "answer", "split"} or not isinstance(ch, list) \
                        or len(ch) < 2 or not all(isinstance(c, str) and c.strip() for c in ch):
                    problems.append("%s/%s: bad item %s" % (tname, s, rid))
                    continue
                if not isinstance(r["answer"], int) or isinstance(r["answer"], bool) or not 0 <= r["answer"] < len(ch):
                    problems.append("%s/%s: item %s answer out of range" % (tname, s, rid))
                    continue
                if len({norm_key(c) for c in ch}) != len(ch):
                    problems.append("%s/%s: item %s has duplicate choices" % (tname, s, rid))
                key = norm_key(r["context"] + "\0" + ch[r["answer"]])
            if key in homes and homes[key] != s:
                problems.append("%s: item text of %s in both %s and %s" % (tname, rid, homes[key], s))
            homes[key] = s
            doc = rid.split("#")[0] if isinstance(rid, str) and "#" in rid else None
            if doc and d != "cross" and doc in all_docs and all_docs[doc] != s:
                problems.append("%s: %s item %s comes from a %s document" % (tname, s, rid, all_docs[doc]))
            if doc and d == "cross":
                inner = doc.split("/", 1)[1]
                if inner in all_docs and all_docs[inner] != s:
                    problems.append("%s: %s item %s comes from a %s document" % (tname, s, rid, all_docs[inner]))
    if h.get("counts", {}).get("test", 0) < 300 and not h.get("note") and not _is_mini(root):
        problems.append("%s: test split under 300 items without a note" % tname)
    return problems


def _is_mini(root):
    with open(os.path.join(root, "manifest.json"), encoding="utf-8") as f:
        return bool(json.load(f).get("mini"))

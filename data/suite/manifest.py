"""Manifests: per domain (sources with package, version, licence, archive checksum and size;
corpus counts; files with sha256; task headers) and the suite-wide DIR/manifest.json."""
import json
import os

from common import DOMAINS, PROBES, sha256_file, write_json

FORMAT = "gemkit-suite/1"


def file_entry(root, rel):
    path = os.path.join(root, rel)
    with open(path, "rb") as f:
        lines = sum(1 for _ in f)
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path), "records": lines}


def package_entry(pin):
    return {k: pin[k] for k in ("type", "package", "version", "licence", "sha256", "size", "file")}


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_suite_manifest(out, mini):
    """Merge every complete domain's manifest (and cross/) into DIR/manifest.json."""
    doms, tasks = {}, {}
    for d in DOMAINS + PROBES + ["cross"]:
        p = os.path.join(out, d, "manifest.json")
        if os.path.exists(os.path.join(out, d, ".complete")) and os.path.exists(p):
            m = read(p)
            doms[d] = m
            for name, h in m.get("tasks", {}).items():
                tasks["%s/%s" % (d, name)] = h
    suite = {"format": FORMAT, "mini": mini, "domains_complete": [d for d in DOMAINS if d in doms],
             "domains_missing": [d for d in DOMAINS if d not in doms], "domains": doms, "tasks": tasks,
             "split_rule": "documents ranked by sha256(salt, key); test/validation/train by fixed fractions; "
                           "task items inherit the split of the document they come from",
             "dedup_rule": "sha256 of NFKC case-folded whitespace-collapsed text; first occurrence kept "
                           "(domain order %s)" % ", ".join(DOMAINS)}
    if any(d in doms for d in PROBES):  # full builds (data/mini has no probe: its manifest is unchanged)
        suite["probes_complete"] = [d for d in PROBES if d in doms]
    write_json(os.path.join(out, "manifest.json"), suite)
    return suite

#!/usr/bin/env python3
"""Checks the quickstart's comparison (out/quickstart/comparison.json, written by `gemkit compare`):
plain fine-tuning and GEM both learn the target domain, and GEM forgets much less of the general
domain than plain fine-tuning. Bounds are well inside what the deterministic quickstart measures
(README "Quickstart"), so a failure means a real regression, not noise."""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "out/quickstart/comparison.json"
summary = json.load(open(path))["summary"]
ft, gem = summary["fine-tuned"], summary["gem"]
checks = [
    ("fine-tuned domain gain >= 50%", ft["domain_gain"] >= 0.5),
    ("fine-tuned general drift >= 50% (the forgetting to remove)", ft["general_drift"] >= 0.5),
    ("gem domain gain >= 30%", gem["domain_gain"] >= 0.3),
    ("gem forgetting reduction >= 60%", (gem["forgetting_reduction_vs_fine-tuned"] or 0) >= 0.6),
]
for name, ok in checks:
    print(("ok    " if ok else "FAIL  ") + name)
print("fine-tuned: gain %+.1f%%, drift %+.1f%%; gem: gain %+.1f%%, drift %+.1f%%, forgetting reduction %.1f%%" % (
    100 * ft["domain_gain"], 100 * ft["general_drift"], 100 * gem["domain_gain"], 100 * gem["general_drift"],
    100 * gem["forgetting_reduction_vs_fine-tuned"]))
sys.exit(0 if all(ok for _, ok in checks) else 1)

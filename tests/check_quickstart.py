#!/usr/bin/env python3
"""Checks the quickstart's comparison (out/quickstart/comparison.json, written by `gemkit compare`):
plain fine-tuning and GEM both learn the target domain, and GEM forgets less than plain
fine-tuning off target (the six other domains of data/mini, not the replayed general corpus).
In loss terms (nats of mean token NLL). The deterministic quickstart measured (README
"Quickstart"): fine-tuned NLL gain 1.558, off-target rise 0.278; GEM NLL gain 0.814, gain kept
52.2%, forgetting reduction 62.3%; each bound sits a little below its measured value, so a
failure means a real regression, not noise."""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "out/quickstart/comparison.json"
summary = json.load(open(path))["summary"]
ft, gem = summary["fine-tuned"], summary["gem"]
kept, reduction = gem["gain_kept_vs_fine-tuned"] or 0, gem["forgetting_reduction_vs_fine-tuned"] or 0
checks = [
    ("fine-tuned NLL gain >= 1.4 nats (measured 1.558)", ft["nll_gain"] >= 1.4),
    ("fine-tuned off-target rise >= 0.2 nats, the forgetting to remove (measured 0.278)", ft["off_target_rise"] >= 0.2),
    ("gem gain kept >= 45% (measured 52.2%)", kept >= 0.45),
    ("gem forgetting reduction >= 55% (measured 62.3%)", reduction >= 0.55),
]
for name, ok in checks:
    print(("ok    " if ok else "FAIL  ") + name)
print("fine-tuned: NLL gain %+.3f, off-target rise %+.3f; gem: NLL gain %+.3f, off-target rise %+.3f, "
      "gain kept %.1f%%, forgetting reduction %.1f%%" % (ft["nll_gain"], ft["off_target_rise"], gem["nll_gain"],
                                                         gem["off_target_rise"], 100 * kept, 100 * reduction))
sys.exit(0 if all(ok for _, ok in checks) else 1)

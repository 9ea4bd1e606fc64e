#!/usr/bin/env python3
"""The budget pilot's table (docs/run_pilot_smollm2_budget.sh): for each evaluated model, the law
NLL gain over the base (nats), the mean NLL rise R_off over the other six domains and the held-out
general probe (the replayed general corpus left out, as in the ablation reports), and each rise,
all on the validation split.
    pilot_table.py FOLDER      (FOLDER/base.json and one JSON report per model)"""
import json
import math
import os
import sys

TARGET, REPLAYED = "law", "general"


def nll(path):
    with open(path) as f:
        report = json.load(f)
    return {r["key"]: math.log(r["figures"]["perplexity"]["value"]) for r in report["results"] if r["kind"] == "perplexity"}


def main():
    folder = sys.argv[1]
    base = nll(os.path.join(folder, "base.json"))
    off = [d for d in base if d not in (TARGET, REPLAYED)]
    print("| model | law NLL | law gain | R_off (mean of %d) | %s |" % (len(off), " | ".join(off)))
    print("|---|---|---|---|%s" % ("---|" * len(off)))
    names = sorted((n[:-5] for n in os.listdir(folder) if n.endswith(".json")),
                   key=lambda n: (n != "base", n.split("_step")[0], int(n.split("_step")[1]) if "_step" in n else 0))
    for name in names:
        m = nll(os.path.join(folder, name + ".json"))
        rises = [m[d] - base[d] for d in off]
        print("| %s | %.3f | %+.3f | %+.3f | %s |" % (
            name, m[TARGET], base[TARGET] - m[TARGET], sum(rises) / len(rises), " | ".join("%+.3f" % r for r in rises)))


if __name__ == "__main__":
    main()

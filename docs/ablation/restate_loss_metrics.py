#!/usr/bin/env python3
"""The gemkit-base grids of docs/ablation.md sections 2 and 3, re-stated in the loss metrics.

    python3 docs/ablation/restate_loss_metrics.py > docs/ablation/restated.md

Reads the committed report.json of each grid (the runs' checkpoints are not kept). Exact per
seed: the target's NLL gain G = log PPL(m0,t) - log PPL(m,t) (log PPL is the mean token NLL),
and gain kept = G / G of plain fine-tuning with the same seed. Off target the reports keep only
the mean over seeds of each domain's perplexity ratio, so R_off here is the mean over the domains
other than the target and general of log(1 + that mean change): the log of a mean, which is at
least the mean of the logs (Jensen), so R_off is over-stated by the seeds' spread. These grids
replayed a general corpus that held every general source, so they have no held-out probe: the
general rise is shown apart, as the replayed corpus. Standard library only."""
import json
import math
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
T95 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764}


def interval(values):
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "n/a"
    m = statistics.mean(v)
    if len(v) < 2:
        return "%+.4f" % m
    h = T95[len(v) - 1] * statistics.stdev(v) / math.sqrt(len(v))
    return "%+.4f [%+.4f, %+.4f]" % (m, m - h, m + h)


def pct(x):
    return "n/a" if x is None or not math.isfinite(x) else "%.1f%%" % (100 * x)


def restate(name, title):
    r = json.load(open(os.path.join(HERE, name, "report.json")))
    base = r["base"]["perplexity"]
    transfer = {row["label"]: row for row in r["transfer"]["rows"]}
    gains = {}  # (method, seed) -> G
    for run in r["runs"]:
        if run["status"] == "done" and run["metrics"].get("target_ppl"):
            gains[(run["method"], run["seed"])] = math.log(base[run["target"]] / run["metrics"]["target_ppl"])
    out = ["## %s (`docs/ablation/%s/report.json`)" % (title, name), "",
           "| method | target | seeds | NLL gain (nats) | gain kept (loss) | off-target rise R_off (nats) | "
           "forgetting reduction (R_off) | general (replayed) rise | gain kept (PPL, as reported) |",
           "|---|---|---|---|---|---|---|---|---|"]
    rows = {}
    for row in r["rows"]:
        method, target = row["method"], row["target"]
        baseline = r["baselines"][target]
        seeds = row["seeds"]
        g = [gains.get((method, s)) for s in seeds]
        kept = []
        for s in seeds:
            gb = gains.get((baseline, s))
            kept.append(gains[(method, s)] / gb if gb and gb > 0 and (method, s) in gains else None)
        ch = transfer[row["label"]]["ppl_change"]
        off = [d for d in r["transfer"]["domains"] if d not in (target, "general")]
        r_off = statistics.mean(math.log1p(ch[d]) for d in off)
        rows[method] = r_off
        b_off = rows.get(baseline)
        fr = None if method == baseline or b_off is None or b_off <= 0 else 1 - r_off / b_off
        kept_ppl = row["metrics"]["gain_kept"]["mean"]
        out.append("| %s | %s | %d | %s | %s | %+.4f | %s | %+.4f | %s |" % (
            method, target, len(seeds), interval(g),
            "reference" if method == baseline else pct(statistics.mean([k for k in kept if k is not None] or [math.nan])),
            r_off, "reference" if method == baseline else pct(fr), math.log1p(ch["general"]),
            "reference" if method == baseline else pct(kept_ppl)))
    return "\n".join(out) + "\n"


_, command, description = __doc__.split("\n\n", 2)
print("# The gemkit-base grids in loss terms\n\n```sh\n%s\n```\n" % command.strip())
print(description.split("Standard library")[0].strip().replace("\n", " ") + "\n")
print(restate("law", "Section 2: the minimum grid on law, 3 seeds"))
print(restate("domains", "Section 3: plain fine-tuning against GEM on seven domains, 3 seeds"))

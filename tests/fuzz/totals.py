#!/usr/bin/env python3
"""Totals of the fuzz runs recorded in tests/fuzz/run.sh's fuzz_log.tsv, as a markdown table:
per target, the seconds, executions and runs that ended clean, the newest coverage and corpus
size, and the runs that ended in a finding (their time is not counted: a target's clean total
starts again from the fix's commit only in the sense that findings are listed, never hidden).
    totals.py FUZZ_LOG.tsv [FUZZ_LOG.tsv ...]"""
import csv
import sys


def main():
    rows = []
    for path in sys.argv[1:]:
        with open(path) as f:
            rows += list(csv.DictReader(f, delimiter="\t"))
    targets = {}
    for r in rows:
        if None in r.values() or not r["seconds"].isdigit():
            continue  # a row split by a multi-line field (run.sh before 2026-12-07 07:00)
        t = targets.setdefault(r["target"], {"seconds": 0, "execs": 0, "runs": 0, "findings": 0, "cov": 0, "corpus": 0})
        if r["result"] == "ok":
            t["seconds"] += int(r["seconds"])
            t["execs"] += int(r["runs"])
            t["runs"] += 1
        else:
            t["findings"] += 1
        t["cov"], t["corpus"] = int(r["coverage"]), int(r["corpus"])
    print("| target | clean seconds | clean runs | executions | coverage (edges) | corpus | runs ending in a finding |")
    print("|---|---|---|---|---|---|---|")
    for name, t in targets.items():
        print("| %s | %d | %d | %d | %d | %d | %d |" % (name, t["seconds"], t["runs"], t["execs"], t["cov"], t["corpus"], t["findings"]))
    total = sum(t["seconds"] for t in targets.values())
    print("\n%d targets, %d clean seconds in all (%.1f CPU-hours)" % (len(targets), total, total / 3600))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build or validate gemkit's eight-domain data suite.

  python3 data/suite/build_suite.py build --out DIR [--domains a,b] [--mini] [--cache DIR] [--force]
  python3 data/suite/build_suite.py validate DIR

Fetches pinned packages (pins.json) into the cache, extracts clean UTF-8 text, and writes per
domain DIR/<domain>/{train,validation,test}.jsonl, DIR/<domain>/tasks/<task>.<split>.jsonl and
DIR/<domain>/manifest.json, then DIR/cross/ (the eight-way domain-identification task) and
DIR/manifest.json. A domain is built in DIR/<domain>.partial and renamed into place after its
.complete marker is written, so a failed domain leaves the others intact and a re-run resumes.
Standard library only."""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import DOMAINS, PROBES, SuiteError, chunk_text, dumps, norm_key, rank_key, read_jsonl, write_json, write_jsonl  # noqa: E402
import domains  # noqa: E402
import fetch  # noqa: E402
import manifest  # noqa: E402
import tasks as tasklib  # noqa: E402
from split import SPLITS  # noqa: E402

MINI_CORPUS_CHARS = 300_000      # per domain, shared among its mini sources
MINI_SPLIT_SHARE = {"train": 0.8, "validation": 0.1, "test": 0.1}
MINI_TASK_CAPS = {"train": 150, "validation": 50, "test": 200}


class Domain:
    """Collects one domain's corpus sources and tasks, then writes them."""

    def __init__(self, name, out_dir, cache, mini):
        self.name, self.dir, self.cache, self.mini = name, out_dir, cache, mini
        self.corpus, self.tasks = [], {}

    def add_corpus(self, source, pins, docs, mini=False):
        if self.mini and not mini:
            return
        self.corpus.append((source, pins, docs))

    def add_task(self, name, kind, items, description, labels=None, sources=(), caps=None, mini=False, note=None):
        if self.mini and not mini:
            return
        items = tasklib.cap(items, "%s/%s" % (self.name, name), MINI_TASK_CAPS if self.mini else caps)
        if not items:
            raise SuiteError(self.name, "task %s" % name, "no items")
        self.tasks[name] = tasklib.write_task(self.dir, name, kind, items, description, labels, sources,
                                              None if self.mini else note)

    def write_corpus(self):
        seen = set()
        rows = {s: [] for s in SPLITS}
        sources = []
        for source, pins, docs in self.corpus:
            kept, dropped = [], 0
            for d in docs:
                k = norm_key(d["text"])
                if k in seen or len(d["text"]) < 40:
                    dropped += 1
                    continue
                seen.add(k)
                kept.append(d)
            if self.mini:
                kept = self._mini_select(kept, MINI_CORPUS_CHARS // len(self.corpus))
            stats = {s: {"documents": 0, "chars": 0} for s in SPLITS}
            for d in kept:
                rows[d["split"]].append({"id": d["id"], "text": d["text"], "domain": self.name, "source": source})
                stats[d["split"]]["documents"] += 1
                stats[d["split"]]["chars"] += len(d["text"])
            sources.append({"name": source, "packages": [manifest.package_entry(self.cache.pin(p)) for p in pins],
                            "splits": stats, "duplicates_dropped": None if self.mini else dropped})
        for s in SPLITS:
            write_jsonl(os.path.join(self.dir, "%s.jsonl" % s), rows[s])
        return sources

    @staticmethod
    def _mini_select(docs, budget):
        out = []
        for s in SPLITS:
            room = int(budget * MINI_SPLIT_SHARE[s])
            for d in (d for d in docs if d["split"] == s):
                if len(d["text"]) <= room:
                    out.append(d)
                    room -= len(d["text"])
        return out


def build_domain(name, out, cache, mini, log):
    final = os.path.join(out, name)
    part = final + ".partial"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    t0 = time.time()
    dom = Domain(name, part, cache, mini)
    domains.BUILDERS[name](dom)
    sources = dom.write_corpus()
    files = {}
    task_dir = os.path.join(part, "tasks")  # a probe has no tasks
    for rel in ["%s.jsonl" % s for s in SPLITS] + sorted(
            os.path.join("tasks", f) for f in (os.listdir(task_dir) if os.path.isdir(task_dir) else [])):
        files[rel] = manifest.file_entry(part, rel)
    chars = {s: sum(src["splits"][s]["chars"] for src in sources) for s in SPLITS}
    m = {"domain": name, "mini": mini, "sources": sources, "chars": chars, "tasks": dom.tasks, "files": files}
    if name in PROBES:
        m["note"] = "evaluation only: held-out sources that no recipe trains on (no train split)"
    elif not mini and chars["train"] < 2_000_000:
        m["note"] = "fewer than 2 MB of training text: the sources allow no more"
    write_json(os.path.join(part, "manifest.json"), m)
    with open(os.path.join(part, ".complete"), "w") as f:
        f.write(files["train.jsonl"]["sha256"] + "\n")
    _replace_dir(part, final)
    log("  %s: train %.2f MB, validation %.2f MB, test %.2f MB, %d tasks (%.0f s)" % (
        name, chars["train"] / 1e6, chars["validation"] / 1e6, chars["test"] / 1e6, len(dom.tasks), time.time() - t0))


OWN = {"train.jsonl", "validation.jsonl", "test.jsonl", "tasks", "manifest.json", ".complete"}


def _replace_dir(part, final):
    """Move the finished `part` into place; files the suite does not own (such as data/mini/general/
    moby_dick.txt, used by the tokenizer quickstart) are carried over untouched."""
    if os.path.exists(final):
        for name in sorted(os.listdir(final)):
            if name not in OWN and not os.path.exists(os.path.join(part, name)):
                os.replace(os.path.join(final, name), os.path.join(part, name))
        shutil.rmtree(final)
    os.replace(part, final)


def complete(out, name):
    return os.path.exists(os.path.join(out, name, ".complete"))


def cross_dedup(out, log):
    """Drop corpus documents whose text already occurs in an earlier domain (fixed domain order,
    the probes last)."""
    seen = set()
    for name in DOMAINS + PROBES:
        if not complete(out, name):
            continue
        d = os.path.join(out, name)
        m = manifest.read(os.path.join(d, "manifest.json"))
        changed = 0
        keys = set()
        for s in SPLITS:
            rows = read_jsonl(os.path.join(d, "%s.jsonl" % s))
            kept = [r for r in rows if norm_key(r["text"]) not in seen]
            keys.update(norm_key(r["text"]) for r in kept)
            if len(kept) != len(rows):
                changed += len(rows) - len(kept)
                write_jsonl(os.path.join(d, "%s.jsonl" % s), kept)
                m["files"]["%s.jsonl" % s] = manifest.file_entry(d, "%s.jsonl" % s)
        seen |= keys
        if changed:
            m["cross_domain_duplicates_dropped"] = m.get("cross_domain_duplicates_dropped", 0) + changed
            write_json(os.path.join(d, "manifest.json"), m)
            log("  %s: dropped %d documents already present in an earlier domain" % (name, changed))


def build_cross(out, mini, log):
    """The eight-way domain-identification task, from each domain's own corpus splits."""
    caps = {"train": 20, "validation": 8, "test": 25} if mini else {"train": 250, "validation": 25, "test": 60}
    part = os.path.join(out, "cross.partial")
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    items = []
    for name in DOMAINS:
        for s in SPLITS:
            rows = read_jsonl(os.path.join(out, name, "%s.jsonl" % s))
            rows.sort(key=lambda r: rank_key("domain_id", r["id"]))
            n = 0
            for r in rows:
                chunks = [c for c in chunk_text(r["text"], 500, 900) if len(c) >= 200]
                if not chunks:
                    continue
                chunks.sort(key=lambda c: rank_key("domain_id/chunk", c))
                for i, c in enumerate(chunks[:4]):  # at most four passages per document
                    if n < caps[s]:
                        items.append({"id": "%s/%s#%d" % (name, r["id"], i), "text": c, "label": name, "split": s})
                        n += 1
                if n >= caps[s]:
                    break
    header = tasklib.write_task(part, "domain_id", "classification", items,
                                "Which of the eight domains a ~500-character passage of held-out corpus text comes "
                                "from (passages from each domain's own split).", labels=list(DOMAINS),
                                sources=["all domain corpora"])
    files = {os.path.join("tasks", f): manifest.file_entry(part, os.path.join("tasks", f))
             for f in sorted(os.listdir(os.path.join(part, "tasks")))}
    write_json(os.path.join(part, "manifest.json"), {"domain": "cross", "mini": mini, "sources": [],
                                                     "tasks": {"domain_id": header}, "files": files})
    with open(os.path.join(part, ".complete"), "w") as f:
        f.write("ok\n")
    _replace_dir(part, os.path.join(out, "cross"))
    log("  cross: domain_id %s" % header["counts"])


def cmd_build(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    known = DOMAINS + ([] if args.mini else PROBES)
    want = known if not args.domains else [d.strip() for d in args.domains.split(",") if d.strip()]
    bad = [d for d in want if d not in known]
    if bad:
        sys.exit("unknown domain(s): %s (known: %s)" % (", ".join(bad), ", ".join(known)))
    cache = fetch.Cache(args.cache)
    log = lambda s: print(s, flush=True)  # noqa: E731
    t0 = time.time()
    failed = []
    for name in want:
        if complete(out, name) and not args.force:
            m = manifest.read(os.path.join(out, name, "manifest.json"))
            if m.get("mini") == args.mini:
                log("  %s: complete, skipped (use --force to rebuild)" % name)
                continue
        log("domain %s" % name)
        try:
            build_domain(name, out, cache, args.mini, log)
        except SuiteError as e:
            failed.append(name)
            log("ERROR in domain %s: %s" % (name, e))
            log("  (package %s, step %s; other domains are unaffected; re-run to resume)" % (e.package, e.step))
        except (KeyError, ValueError, IndexError, TypeError, OSError) as e:  # a source whose layout changed
            failed.append(name)
            log("ERROR in domain %s: extract failed: %s: %s (source layout changed? see the sources in "
                "data/suite/domains.py, function %s)" % (name, type(e).__name__, e, name))
        shutil.rmtree(os.path.join(out, name + ".partial"), ignore_errors=True)
    cross_dedup(out, log)
    if all(complete(out, d) for d in DOMAINS):
        build_cross(out, args.mini, log)
    suite = manifest.write_suite_manifest(out, args.mini)
    log("suite: %d/8 domains complete, probes %s, %d tasks, %.0f s" % (
        len(suite["domains_complete"]), ", ".join(suite.get("probes_complete", [])) or "none", len(suite["tasks"]),
        time.time() - t0))
    if failed:
        log("failed domains: %s" % ", ".join(failed))
        return 1
    return 0


def cmd_validate(args):
    import validate
    problems = validate.validate(args.dir, require_all=not args.partial)
    for p in problems:
        print("FAIL", p)
    print("validate %s: %s" % (args.dir, "OK" if not problems else "%d problem(s)" % len(problems)))
    return 1 if problems else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="fetch, extract and write the suite")
    b.add_argument("--out", default="suite")
    b.add_argument("--domains", default="", help="comma-separated subset (default: all eight and, in a full build, the probe)")
    b.add_argument("--mini", action="store_true", help="the small redistributable bundle (data/mini)")
    b.add_argument("--cache", default=os.environ.get("GEMKIT_SUITE_CACHE", "~/.cache/gemkit/suite"))
    b.add_argument("--force", action="store_true", help="rebuild domains that are already complete")
    v = sub.add_parser("validate", help="check splits, leakage, labels, baselines and checksums")
    v.add_argument("dir")
    v.add_argument("--partial", action="store_true", help="do not require all eight domains")
    args = ap.parse_args(argv)
    return cmd_build(args) if args.cmd == "build" else cmd_validate(args)


if __name__ == "__main__":
    sys.exit(main())

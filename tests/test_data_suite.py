#!/usr/bin/env python3
"""Validation of the data suite (data/suite) on the bundled data/mini; stdlib unittest only.

Checks: no split leakage or duplicate text, well-formed task items and labels, baselines and
metrics present, manifest checksums equal to the committed files, the quickstart's
data/mini/general/moby_dick.txt still present, checksum failures reported with package and
step, that rebuilding two mini domains from the pinned sources (fetched into
~/.cache/gemkit/suite or $GEMKIT_SUITE_CACHE when missing) reproduces the committed bytes, and
that a full build of general splits it by source into the replay pool and the held-out probe."""
import json
import os
import shutil
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITE = os.path.join(ROOT, "data", "suite")
MINI = os.path.join(ROOT, "data", "mini")
sys.path.insert(0, SUITE)

import build_suite  # noqa: E402
import common  # noqa: E402
import fetch  # noqa: E402
import split  # noqa: E402
import validate  # noqa: E402


def _cache_dir():
    return os.path.expanduser(os.environ.get("GEMKIT_SUITE_CACHE", "~/.cache/gemkit/suite"))


class MiniBundle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(MINI, "manifest.json"), encoding="utf-8") as f:
            cls.manifest = json.load(f)

    def test_validates(self):
        problems = validate.validate(MINI)
        self.assertEqual(problems, [], "\n".join(problems[:20]))

    def test_all_domains_and_tasks(self):
        m = self.manifest
        self.assertTrue(m["mini"])
        self.assertEqual(m["domains_complete"], common.DOMAINS)
        for d in common.DOMAINS:
            self.assertTrue(any(t.startswith(d + "/") for t in m["tasks"]), "no task for " + d)
            for s in split.SPLITS:
                self.assertGreater(m["domains"][d]["files"]["%s.jsonl" % s]["records"], 0)
        h = m["tasks"]["cross/domain_id"]
        self.assertEqual(h["labels"], sorted(common.DOMAINS))
        for name, h in m["tasks"].items():
            self.assertIn(h["type"], ("classification", "multiple_choice"), name)
            self.assertGreaterEqual(h["counts"]["test"], 50, name)
            self.assertIn("majority", h["baselines"], name)
            self.assertIn("random", h["baselines"], name)

    def test_licences_redistributable(self):
        allowed = ("public domain", "CC0", "MIT", "Apache-2.0", "BSD")
        for d in common.DOMAINS:
            for src in self.manifest["domains"][d]["sources"]:
                for p in src["packages"]:
                    self.assertTrue(any(a in p["licence"] for a in allowed), "%s: %s" % (p["package"], p["licence"]))

    def test_quickstart_text_kept(self):
        self.assertGreater(os.path.getsize(os.path.join(MINI, "general", "moby_dick.txt")), 100000)

    def test_leak_detector_works(self):
        tmp = tempfile.mkdtemp()
        try:
            shutil.copytree(MINI, os.path.join(tmp, "m"))
            d = os.path.join(tmp, "m", "law")
            rows = common.read_jsonl(os.path.join(d, "train.jsonl"))
            test = common.read_jsonl(os.path.join(d, "test.jsonl"))
            common.write_jsonl(os.path.join(d, "test.jsonl"), test + [dict(rows[0])])
            problems = validate.validate(os.path.join(tmp, "m"))
            self.assertTrue(any("duplicate text" in p for p in problems))
            self.assertTrue(any("checksum" in p for p in problems))
        finally:
            shutil.rmtree(tmp)


class Pipeline(unittest.TestCase):
    def test_split_is_stable(self):
        keys = ["doc%d" % i for i in range(1000)]
        a = split.assign(keys, "salt", 0.1, 0.05)
        self.assertEqual(a, split.assign(list(reversed(keys)), "salt", 0.1, 0.05))
        self.assertEqual(sum(1 for v in a.values() if v == "test"), 100)
        self.assertEqual(sum(1 for v in a.values() if v == "validation"), 50)

    def test_checksum_mismatch_names_package_and_step(self):
        tmp = tempfile.mkdtemp()
        try:
            cache = fetch.Cache(tmp, log=lambda s: None)
            pin = cache.pin("bsdgames")
            with open(os.path.join(cache.dl, pin["file"]), "wb") as f:
                f.write(b"not the pinned archive")
            with self.assertRaises(common.SuiteError) as ctx:
                cache.archive("bsdgames")
            self.assertEqual((ctx.exception.package, ctx.exception.step), ("bsdgames", "checksum"))
            self.assertIn("bsdgames", str(ctx.exception))
        finally:
            shutil.rmtree(tmp)

    def test_unpack_keeps_members_inside_and_skips_links(self):
        """A pinned archive whose members climb out of the unpack folder is refused by name;
        links are never unpacked (hand-made archives: a pin's sha256 would stop a changed one)."""
        import io
        import tarfile
        tmp = tempfile.mkdtemp()
        try:
            cache = fetch.Cache(tmp, log=lambda s: None)

            def pinned(name, members):
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w:gz") as tf:
                    for member, kind in members:
                        info = tarfile.TarInfo(member)
                        if kind == "link":
                            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                            tf.addfile(info)
                        else:
                            info.size = 2
                            tf.addfile(info, io.BytesIO(b"ok"))
                path = os.path.join(cache.dl, name + ".tgz")
                with open(path, "wb") as f:
                    f.write(buf.getvalue())
                cache.pins[name] = {"type": "npm", "package": name, "version": "1", "file": name + ".tgz",
                                    "sha256": common.sha256_file(path), "extract": ["package/"]}

            pinned("links", [("package/ok.txt", "file"), ("package/link", "link")])
            root = cache.tree("links")
            self.assertTrue(os.path.isfile(os.path.join(root, "package", "ok.txt")))
            self.assertFalse(os.path.lexists(os.path.join(root, "package", "link")))
            pinned("climbs", [("package/ok.txt", "file"), ("package/../../../escape.txt", "file")])
            with self.assertRaises(common.SuiteError) as ctx:
                cache.tree("climbs")
            self.assertEqual(ctx.exception.step, "unpack")
            self.assertIn("package/../../../escape.txt", str(ctx.exception))
            self.assertFalse(os.path.exists(os.path.join(tmp, "escape.txt")))
            self.assertFalse(os.path.exists(os.path.join(os.path.dirname(tmp), "escape.txt")))
        finally:
            shutil.rmtree(tmp)

    def test_rebuild_reproduces_committed_bytes(self):
        # Fetches the pinned sources into the cache when they are not there yet (apt/npm are
        # reachable wherever gemkit builds), so this check always runs.
        tmp = tempfile.mkdtemp()
        try:
            for run in ("a", "b"):
                rc = build_suite.main(["build", "--out", os.path.join(tmp, run), "--mini", "--cache", _cache_dir(),
                                       "--domains", "law,multilingual"])
                self.assertEqual(rc, 0)
            for d in ("law", "multilingual"):
                with open(os.path.join(MINI, d, "manifest.json"), encoding="utf-8") as f:
                    files = json.load(f)["files"]
                for rel, info in files.items():
                    for run in ("a", "b"):
                        got = common.sha256_file(os.path.join(tmp, run, d, rel))
                        self.assertEqual(got, info["sha256"], "%s/%s differs in run %s" % (d, rel, run))
        finally:
            shutil.rmtree(tmp)


class GeneralProbe(unittest.TestCase):
    """The full build's split of general English by source: the replay pool (general) and the
    held-out probe (general_probe) share no source; the probe has no training text and keeps the
    chapter split of the novel_id task."""

    def test_probe_is_held_out_by_source(self):
        tmp = tempfile.mkdtemp()
        try:
            rc = build_suite.main(["build", "--out", tmp, "--cache", _cache_dir(), "--domains", "general,general_probe"])
            self.assertEqual(rc, 0)
            with open(os.path.join(tmp, "general", "manifest.json"), encoding="utf-8") as f:
                self.assertEqual([s["name"] for s in json.load(f)["sources"]], ["austen", "fortunes"])
            rows = {s: common.read_jsonl(os.path.join(tmp, "general_probe", "%s.jsonl" % s)) for s in split.SPLITS}
            self.assertEqual(rows["train"], [])
            self.assertGreater(len(rows["validation"]), 0)
            self.assertGreater(len(rows["test"]), 0)
            probe_split = {r["id"]: s for s in ("validation", "test") for r in rows[s]}
            self.assertTrue(all(i.startswith("moby-dick/") for i in probe_split))
            general_text = {r["text"] for s in split.SPLITS
                            for r in common.read_jsonl(os.path.join(tmp, "general", "%s.jsonl" % s))}
            self.assertFalse(general_text & {r["text"] for s in split.SPLITS for r in rows[s]})
            # novel_id passages of a probe chapter come from the same split as the chapter.
            for s in split.SPLITS:
                for item in common.read_jsonl(os.path.join(tmp, "general", "tasks", "novel_id.%s.jsonl" % s)):
                    doc = item["id"].split("#")[0]
                    if doc in probe_split:
                        self.assertEqual(probe_split[doc], s, item["id"])
            with open(os.path.join(tmp, "manifest.json"), encoding="utf-8") as f:
                self.assertEqual(json.load(f)["probes_complete"], ["general_probe"])
            problems = validate.validate(tmp, require_all=False)
            self.assertEqual(problems, [], "\n".join(problems[:20]))
        finally:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main(verbosity=2)

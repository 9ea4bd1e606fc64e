"""Law sources: SPDX licence texts (spdx-license-list); UCC sections come from the quiz files."""
import json
import os
import re

from common import SuiteError, clean_text


def spdx_docs(cache):
    """One document per licence text; label = OSI approved or not."""
    root = cache.tree("spdx")
    try:
        with open(os.path.join(root, "package/spdx-full.json"), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise SuiteError("spdx-license-list", "extract", "spdx-full.json: %s" % e)
    docs = []
    for lid in sorted(data):
        d = data[lid]
        text = clean_text(re.sub(r"\n{3,}", "\n\n", d.get("licenseText") or ""))
        if len(text) < 200:
            continue
        docs.append({"id": "spdx/%s" % lid, "source": "spdx", "text": text, "name": d.get("name", lid),
                     "label": "osi-approved" if d.get("osiApproved") else "not-osi-approved"})
    if len(docs) < 500:
        raise SuiteError("spdx-license-list", "extract", "only %d licence texts" % len(docs))
    return docs

"""Bible text from SWORD zText modules (KJV 2006 and Reina-Valera 1909), read directly.

A zText module has per testament three files: .bzv (10 bytes per verse slot: u32 block, u32 offset,
u16 size), .bzs (12 bytes per block: u32 offset, u32 compressed size, u32 size) and .bzz (zlib
blocks). Slots follow the KJV versification with heading slots for module, testament, book and
chapter, so two modules with Versification=KJV align slot by slot."""
import os
import re
import struct
import zlib

from common import SuiteError, squash

MODULES = {"kjv": ("sword-text-kjv", "engKJV2006eb"), "sparv": ("sword-text-sparv", "spaRV1909eb")}


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _read_module(cache, key):
    pkg, mod = MODULES[key]
    root = cache.tree(key)
    base = os.path.join(root, "usr/share/sword/modules/texts/ztext", mod.lower())
    if not os.path.isdir(base):
        base = os.path.join(root, "usr/share/sword/modules/texts/ztext", mod)
    slots = []
    for t in ("ot", "nt"):
        try:
            bzs, bzv, bzz = (_read(os.path.join(base, "%s.%s" % (t, ext))) for ext in ("bzs", "bzv", "bzz"))
        except OSError as e:
            raise SuiteError(pkg, "extract", "module %s: %s" % (mod, e))
        blocks = {}
        for i in range(len(bzv) // 10):
            b, o, n = struct.unpack_from("<IIH", bzv, i * 10)
            if n == 0:
                slots.append("")
                continue
            if b not in blocks:
                off, cs, _ = struct.unpack_from("<III", bzs, b * 12)
                blocks[b] = zlib.decompress(bzz[off:off + cs])
            slots.append(blocks[b][o:o + n].decode("utf-8", errors="replace"))
    return slots


def _plain(osis):
    s = re.sub(r"(?s)<note\b.*?</note>", "", osis)
    s = re.sub(r"(?s)<title\b.*?</title>", "", s)
    s = re.sub(r"<[^>]+>", "", s)
    return squash(s.replace("¶", ""))


def bible_verses(cache):
    """[(chapter id 'Gen.1', verse number, english, spanish)] aligned by KJV versification slot."""
    en, es = _read_module(cache, "kjv"), _read_module(cache, "sparv")
    if len(en) != len(es) or len(en) < 31000:
        raise SuiteError("sword-text-sparv", "align", "slot counts differ: %d vs %d" % (len(en), len(es)))
    out, chapter, verse = [], None, 0
    for a, b in zip(en, es):
        m = re.search(r'<chapter\b[^>]*osisID="([^"]+)"', a)
        if m:
            chapter, verse = m.group(1), 0
            continue
        if re.search(r'type="book"|x-importer', a) and not _plain(a):
            continue
        if chapter is None:
            continue
        verse += 1
        ta, tb = _plain(a), _plain(b)
        if ta and tb:
            out.append((chapter, verse, ta, tb))
    return out

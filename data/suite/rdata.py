"""Reader for R lazy-load databases (.rdx/.rdb), enough for character vectors.

An R package's data/Rdata.rdx is a gzip'd R serialization (XDR format) of a list with
"variables": a named list mapping each object name to an integer (offset, length) pair
into Rdata.rdb; each blob there is a 4-byte big-endian uncompressed length followed by a
zlib stream holding the serialized object. Only the SEXP types that such data uses are
decoded; anything else raises ValueError naming the type.
"""
import gzip
import struct
import zlib

NILVALUE, REFSXP, NILSXP, SYMSXP, LISTSXP = 254, 255, 0, 1, 2
CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 9, 10, 13, 14, 16, 19
GLOBALENV, EMPTYENV, BASEENV, MISSINGARG, BASENAMESPACE = 253, 242, 241, 251, 247


class _Reader:
    def __init__(self, buf):
        self.b, self.p, self.refs = buf, 0, []

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def header(self):
        if self.b[:2] != b"X\n":
            raise ValueError("not an XDR R serialization")
        self.p = 2
        version = self.int()
        self.int()  # writer R version
        self.int()  # minimal reader version
        if version == 3:
            n = self.int()
            self.p += n  # native encoding name
        return self.item()

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        if t in (NILVALUE, GLOBALENV, EMPTYENV, BASEENV, MISSINGARG, BASENAMESPACE):
            return None
        if t == REFSXP:
            return self.refs[(flags >> 8) - 1]
        if t == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if t == LISTSXP:
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            out = [(tag, car)]
            if isinstance(cdr, list):
                out.extend(cdr)
            return out
        if t == CHARSXP:
            n = self.int()
            if n == -1:
                return None
            s = self.b[self.p:self.p + n]
            self.p += n
            return s.decode("utf-8", errors="replace") if not (flags >> 12) & 4 else s.decode("latin-1")
        if t in (LGLSXP, INTSXP):
            n = self.int()
            v = list(struct.unpack_from(">%di" % n, self.b, self.p))
            self.p += 4 * n
        elif t == REALSXP:
            n = self.int()
            v = list(struct.unpack_from(">%dd" % n, self.b, self.p))
            self.p += 8 * n
        elif t in (STRSXP, VECSXP):
            n = self.int()
            v = [self.item() for _ in range(n)]
        else:
            raise ValueError("unsupported R SEXP type %d" % t)
        if has_attr:
            attrs = self.item()
            names = dict((k, val) for k, val in attrs).get("names") if attrs else None
            if names and t == VECSXP:
                return dict(zip(names, v))
        return v


def read_lazyload(rdx_path, rdb_path):
    """Return {object name: decoded value} for every object in the database."""
    with gzip.open(rdx_path, "rb") as f:
        buf = f.read()
    try:
        index = _Reader(buf).header()
    except ValueError:
        index = _Reader(zlib.decompress(buf[4:])).header()
    with open(rdb_path, "rb") as f:
        rdb = f.read()
    out = {}
    for name in sorted(index["variables"]):
        off, length = index["variables"][name]
        blob = rdb[off:off + length]
        out[name] = _Reader(zlib.decompress(blob[4:])).header()
    return out

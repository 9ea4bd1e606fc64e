#!/usr/bin/python3
"""Re-checks ggml_quantize_ref byte for byte against an independent numpy reimplementation.

    /usr/bin/python3 tests/llama_cpp/check_quantize_ref.py [--tool PATH] [--prebuilt-lib PATH]
                                                          [--rows N] [--seed S] [--work DIR]

The reimplementation follows docs (docs/design/formats.md) and ggml/src/ggml-quants.c
(quantize_row_q8_0_ref, quantize_row_q4_0_ref) of the llama.cpp in npm node-llama-cpp@3.22.1:

  Q8_0, blocks of 32 -> 34 bytes: amax = max|x|; d = amax / 127 (fp32); id = d ? 1/d : 0 (fp32);
       q = roundf(x * id) (fp32 product, rounding half away from zero); store fp16(d) (round to
       nearest even), then the 32 int8 q.
  Q4_0, blocks of 32 -> 18 bytes: max = the first element of largest magnitude, with its sign;
       d = max / -8 (fp32); id = d ? 1/d : 0; q = min(15, (int8_t)(x * id + 8.5f)) with the
       product and the sum each rounded to fp32 (no FMA) and truncation toward zero; store fp16(d),
       then 16 bytes: byte j = q[j] | q[j + 16] << 4.
  Note that ggml multiplies by the fp32 reciprocal id; it does not divide by d.

Test data (several thousand rows of 256 values, i.e. tens of thousands of blocks): Gaussian blocks
at scales 1e-30..1e30, all-zero blocks, magnitude ties (+a and -a, several times), negative maxima,
exact .5 rounding boundaries for both formats (at scale 1 and, within an ulp, at random scales,
which tells x * (1/d) from x / d and a fused multiply-add from two roundings), one-hot and constant blocks, scales whose fp16 d
is subnormal or overflows to inf, random finite float32 bit patterns, and x86-only cases where
1/d overflows (amax below ~5e-37: ggml then converts inf/NaN to int8, which x86 turns into 0;
other CPUs may differ). A second file of rows of 4096 (18 MB) crosses the tool's 16 MB chunk.
With --prebuilt-lib (default: the libggml-base.so of the installed @node-llama-cpp/linux-x64) the
same data also goes through the prebuilt library's ggml_quantize_chunk via ctypes.
Finally every deliberate deviation (x / d instead of x * (1/d), round half to even, truncated fp16,
last instead of first magnitude tie, fused multiply-add) must be caught by some test blocks.
Exit status 0 when every byte matches and every deviation is caught.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DEST = os.environ.get("GEMKIT_LLAMA_CPP", os.path.join(HERE, "..", "..", "build", "llama_cpp"))
F32 = np.float32
GGML_TYPE = {"q4_0": 2, "q8_0": 8}
N_KINDS = 16
BLOCK_BYTES = {"q4_0": 18, "q8_0": 34}


def f32_to_int8_x86(v):
    """(int8_t) of a float as GCC emits it on x86-64: cvttss2si (truncate; NaN/inf/overflow ->
    INT_MIN), then keep the low 8 bits. Only the non-finite case is reached by ggml's code."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros(v.shape, dtype=np.int64)
    fin = np.isfinite(v) & (np.abs(v) < 2 ** 31)
    out[fin] = np.trunc(v[fin]).astype(np.int64)
    out[~fin] = -(2 ** 31)
    return (out & 0xFF).astype(np.uint8).view(np.int8)


def roundf(v):
    """C roundf on float32 values: half away from zero (exact in float64)."""
    v = np.asarray(v, dtype=np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def recip(d):
    return np.where(d != 0, F32(1) / np.where(d != 0, d, F32(1)), F32(0)).astype(F32)


def scaled(b, d, div):
    """x * id with the fp32 reciprocal id = 1/d (ggml), or x / d for the 'div' deviation."""
    if div:
        return np.where(d[:, None] != 0, b / np.where(d != 0, d, F32(1))[:, None], F32(0)).astype(F32)
    return (b * recip(d)[:, None]).astype(F32)


def to_fp16_bytes(d, trunc=False):
    if trunc:  # deviation: truncate the mantissa instead of rounding to nearest even
        d = (d.view(np.uint32) & np.uint32(0xFFFFE000)).view(F32)
    return d.astype(np.float16).view(np.uint8).reshape(-1, 2)


def quant_q8_0(x, div=False, half_even=False, fp16_trunc=False):
    """Q8_0 as ggml's quantize_row_q8_0_ref; the keyword arguments select deliberate deviations."""
    b = x.reshape(-1, 32).astype(F32)
    amax = np.abs(b).max(1)
    d = (amax / F32(127)).astype(F32)
    x0 = scaled(b, d, div)
    r = np.round(x0.astype(np.float64)) if half_even else roundf(x0)  # roundf keeps inf/NaN
    q = f32_to_int8_x86(r)
    out = np.empty((b.shape[0], 34), dtype=np.uint8)
    out[:, :2] = to_fp16_bytes(d, fp16_trunc)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quant_q4_0(x, div=False, last_tie=False, fma=False):
    """Q4_0 as ggml's quantize_row_q4_0_ref; the keyword arguments select deliberate deviations."""
    b = x.reshape(-1, 32).astype(F32)
    a = np.abs(b)
    top = a == a.max(1, keepdims=True)
    first = 31 - np.argmax(top[:, ::-1], axis=1) if last_tie else np.argmax(top, axis=1)
    mx = b[np.arange(b.shape[0]), first]
    mx = np.where(a.max(1) > 0, mx, F32(0)).astype(F32)      # max stays +0.0f for all-zero blocks
    d = (mx / F32(-8)).astype(F32)
    if fma:    # one rounding for x * id + 8.5, as a fused multiply-add would do
        s = b.astype(np.float64) * recip(d)[:, None].astype(np.float64) + 8.5
    else:
        s = (scaled(b, d, div) + F32(8.5)).astype(F32)
    q = np.minimum(15, f32_to_int8_x86(s).astype(np.int64)).astype(np.uint8)  # MIN(15, (int8_t)..) as uint8
    out = np.empty((b.shape[0], 18), dtype=np.uint8)
    out[:, :2] = to_fp16_bytes(d)
    out[:, 2:] = q[:, :16] | ((q[:, 16:] << 4) & 0xFF)
    return out.tobytes()


DEVIATIONS = {"q8_0": [dict(div=True), dict(half_even=True), dict(fp16_trunc=True)],
              "q4_0": [dict(div=True), dict(last_tie=True), dict(fma=True)]}
PY = {"q8_0": quant_q8_0, "q4_0": quant_q4_0}


def test_blocks(rng, n_rows, row_len):
    """Rows of row_len values built from 32-value blocks of many kinds; returns (data, kinds)."""
    nb = n_rows * row_len // 32
    kinds = []
    blocks = np.empty((nb, 32), dtype=F32)
    n_kinds = N_KINDS
    for i in range(nb):
        k = i % n_kinds
        kinds.append(k)
        if k == 0:    # Gaussian at a random scale 1e-30 .. 1e30
            v = rng.standard_normal(32) * 10.0 ** rng.uniform(-30, 30)
        elif k == 1:  # all zeros (and negative zeros)
            v = np.zeros(32) * rng.choice([1.0, -1.0], 32)
        elif k == 2:  # magnitude ties: +a and -a appear several times, in random order
            a = 10.0 ** rng.uniform(-5, 5)
            v = rng.uniform(-a, a, 32)
            idx = rng.choice(32, rng.integers(2, 6), replace=False)
            v[idx] = a * rng.choice([1.0, -1.0], len(idx))
        elif k == 3:  # negative maximum
            v = rng.standard_normal(32) * 10.0 ** rng.uniform(-3, 3)
            j = rng.integers(32)
            v[j] = -(np.abs(v).max() * rng.uniform(1.0, 2.0))
        elif k == 4:  # Q8_0 rounding boundaries: amax 127 gives d = 1, so x * id = k + 0.5 exactly
            v = rng.integers(-127, 127, 32) + 0.5
            v[rng.integers(32)] = 127.0 * rng.choice([1.0, -1.0])
        elif k == 5:  # Q4_0 boundaries: max = -8 gives d = 1, id = 1: x + 8.5 hits integers / halves
            v = rng.integers(-16, 16, 32) * 0.5
            v = np.clip(v, -7.5, 7.5)
            v[rng.integers(32)] = -8.0
        elif k == 6:  # Q4_0 boundaries with max = +8 (d = -1)
            v = np.clip(rng.integers(-16, 16, 32) * 0.5, -7.5, 7.5)
            v[rng.integers(32)] = 8.0
        elif k == 7:  # one-hot / constant blocks
            v = np.zeros(32)
            if rng.random() < 0.5:
                v[rng.integers(32)] = rng.standard_normal() * 10.0 ** rng.uniform(-8, 8)
            else:
                v[:] = rng.standard_normal() * 10.0 ** rng.uniform(-8, 8)
        elif k == 8:  # fp16 d subnormal (amax ~ 1e-9 .. 1e-3) or flushed to 0
            v = rng.standard_normal(32) * 10.0 ** rng.uniform(-12, -3)
        elif k == 9:  # fp16 d near / beyond the fp16 maximum (65504): amax ~ 1e5 .. 1e9
            v = rng.standard_normal(32) * 10.0 ** rng.uniform(5, 9)
        elif k == 10:  # huge values up to ~3e38
            v = rng.uniform(-1, 1, 32) * 10.0 ** rng.uniform(30, 38.5)
        elif k == 11:  # random finite float32 bit patterns
            bits = rng.integers(0, 2 ** 32, 32, dtype=np.uint64).astype(np.uint32)
            v = bits.view(F32).copy()
            v[~np.isfinite(v)] = F32(0)
        elif k == 12:  # values on an fp16/int grid, like already-quantized weights
            v = rng.integers(-127, 128, 32) * float(np.float16(10.0 ** rng.uniform(-4, 1)))
        elif k == 13:  # x86-specific: 1/d overflows to inf (amax < ~5e-37, incl. float32 subnormals)
            v = rng.standard_normal(32) * 10.0 ** rng.uniform(-44, -36)
        elif k == 14:  # Q8_0 at random scales: x = (j + 1/2) * s within an ulp, amax = 127 * s
            sc = F32(10.0 ** rng.uniform(-6, 6))
            v = (rng.integers(-127, 127, 32).astype(F32) + F32(0.5)) * sc
            v = np.nextafter(v, v * F32(2), dtype=F32) if rng.random() < 0.3 else v
            v[rng.integers(32)] = F32(127) * sc * F32(rng.choice([1, -1]))
        else:          # Q4_0 at random scales: x * id + 8.5 within an ulp of an integer, max = -8 * s
            sc = F32(10.0 ** rng.uniform(-6, 6)) * F32(rng.choice([1, -1]))
            v = (rng.integers(-16, 16, 32).astype(F32) * F32(0.5)) * sc
            v = np.nextafter(v, v * F32(2), dtype=F32) if rng.random() < 0.3 else v
            v = np.clip(v, -np.abs(F32(7.5) * sc), np.abs(F32(7.5) * sc))
            v[rng.integers(32)] = F32(-8) * sc
        blocks[i] = v if isinstance(v, np.ndarray) and v.dtype == F32 else np.asarray(v, dtype=np.float64).astype(F32)
    return blocks.reshape(n_rows, row_len), np.array(kinds)


def run_tool(tool, qtype, row_len, data, work):
    src = os.path.join(work, "in.f32")
    dst = os.path.join(work, "out.bin")
    data.astype("<f4").tofile(src)
    subprocess.run([tool, qtype, str(row_len), src, dst], check=True, stderr=subprocess.DEVNULL)
    with open(dst, "rb") as fh:
        return fh.read()


def run_prebuilt(lib, qtype, row_len, data):
    data = np.ascontiguousarray(data, dtype=F32)
    n_rows = data.size // row_len
    out = ctypes.create_string_buffer(n_rows * row_len // 32 * BLOCK_BYTES[qtype])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    n = lib.ggml_quantize_chunk(GGML_TYPE[qtype], data.ctypes.data, ctypes.addressof(out), 0, n_rows, row_len, None)
    assert n == len(out.raw), (n, len(out.raw))
    return out.raw


def compare(name, got, want, qtype, kinds):
    if got == want:
        return True
    bb = BLOCK_BYTES[qtype]
    g = np.frombuffer(got, np.uint8)
    w = np.frombuffer(want, np.uint8)
    if g.size != w.size:
        print("  %s: size %d != %d" % (name, g.size, w.size))
        return False
    bad = np.nonzero((g.reshape(-1, bb) != w.reshape(-1, bb)).any(1))[0]
    kind_counts = np.bincount(kinds[bad], minlength=N_KINDS) if kinds is not None else []
    print("  %s: %d of %d blocks differ (by test kind: %s); first block %d" %
          (name, bad.size, g.size // bb, list(kind_counts), bad[0]))
    return False


def main():
    np.seterr(all="ignore")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tool", default=os.path.join(DEFAULT_DEST, "bin", "ggml_quantize_ref"))
    ap.add_argument("--prebuilt-lib", default=None,
                    help="libggml-base.so to compare too (default: the installed prebuilt one, if present; 'none' to skip)")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    if not os.access(a.tool, os.X_OK):
        sys.exit("check_quantize_ref: %s not found (run tests/llama_cpp/install.sh [DEST] or pass --tool)" % a.tool)
    lib_path = a.prebuilt_lib
    if lib_path is None:
        dest = os.path.dirname(os.path.dirname(os.path.abspath(a.tool)))
        cand = os.path.join(dest, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libggml-base.so")
        lib_path = cand if os.path.exists(cand) else "none"
    lib = ctypes.CDLL(lib_path) if lib_path != "none" else None
    work = a.work or tempfile.mkdtemp(prefix="quantize_ref_check.")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    cases = [("rows of 256", 256, *test_blocks(rng, a.rows, 256)),
             ("rows of 32", 32, *test_blocks(rng, 512, 32)),
             ("rows of 4096 (18 MB, crosses the 16 MB chunk)", 4096,
              (rng.standard_normal((1100, 4096)) * 0.02).astype(F32), None)]
    ok = True
    for label, row_len, data, kinds in cases:
        for qtype in ("q8_0", "q4_0"):
            want = PY[qtype](data)
            got = run_tool(a.tool, qtype, row_len, data, work)
            good = compare("tool vs python", got, want, qtype, kinds)
            line = "%s %s: %d blocks, tool == python: %s" % (qtype, label, data.size // 32, good)
            if lib is not None:
                pre = run_prebuilt(lib, qtype, row_len, data)
                g2 = compare("prebuilt vs python", pre, want, qtype, kinds)
                line += ", prebuilt libggml-base.so == python: %s" % g2
                good &= g2
            ok &= good
            print(line)
    # The data must be able to tell ggml's rules from plausible mistakes: each deliberate deviation
    # of the reimplementation has to disagree with the tool on some blocks.
    label, row_len, data, kinds = cases[0]
    for qtype in ("q8_0", "q4_0"):
        got = np.frombuffer(run_tool(a.tool, qtype, row_len, data, work), np.uint8).reshape(-1, BLOCK_BYTES[qtype])
        for dev in DEVIATIONS[qtype]:
            alt = np.frombuffer(PY[qtype](data, **dev), np.uint8).reshape(-1, BLOCK_BYTES[qtype])
            n = int((alt != got).any(1).sum())
            ok &= n > 0
            print("%s deviation %-18s is caught by %5d of %d blocks" % (qtype, list(dev)[0], n, got.shape[0]))
    if lib is None:
        print("(prebuilt libggml-base.so not compared)")
    else:
        print("prebuilt library: %s" % os.path.realpath(lib_path))
    print("check_quantize_ref: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

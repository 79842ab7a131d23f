#!/usr/bin/env python3
"""Generate the known-answer vectors in tests/data/standard/ (not run in CI;
the JSON it writes is committed).

Two independent references, cross-checked against each other wherever both
define a result:

* gguf-py (llama.cpp/gguf-py/gguf/quants.py, numpy): dequantize for every
  format it knows, quantize for F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
* ggml itself through ctypes: libggml-base (ggml-quants.c `*_ref`
  quantizers, `dequantize_row_*`, fp16/bf16 conversion; built without
  -march=native, so no FMA contraction) and libggml-cpu (the
  `ggml_vec_dot_*_generic` kernels and `ggml_vec_dot_{f32,f16,bf16}`).
  It gives the expected bytes of the K-quant and Q8_K quantizers, which
  gguf-py lacks, and the expected dot products.

Usage:
  PYTHONPATH=<llama.cpp>/gguf-py python3 gen_standard.py [--ggml-lib-dir DIR]

Each output file <format>.json holds hex strings (little-endian bytes; f32
values as their little-endian bit patterns, so NaN/inf and -0 are exact):
  dequantize: [{src, dst, ref}]      dst = f32 values of src
  quantize:   [{src, dst, ref}]      src = f32 input, dst = block bytes
  vec_dot:    [{w, a, dot, ref}]     a in the weight type's vec_dot_type
"""

import argparse
import ctypes
import json
import os
import sys

import numpy as np
from gguf.constants import GGMLQuantizationType as T
import gguf.quants as gq

QK_K = 256
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standard")

# name -> (ggml type, block size, type size, vec_dot_type name)
FORMATS = {
    "f32": (T.F32, 1, 4, "f32"),
    "f16": (T.F16, 1, 2, "f16"),
    "bf16": (T.BF16, 1, 2, "bf16"),
    "q4_0": (T.Q4_0, 32, 18, "q8_0"),
    "q5_0": (T.Q5_0, 32, 22, "q8_0"),
    "q8_0": (T.Q8_0, 32, 34, "q8_0"),
    "q8_k": (T.Q8_K, QK_K, 292, "q8_k"),
    "q4_k": (T.Q4_K, QK_K, 144, "q8_k"),
    "q5_k": (T.Q5_K, QK_K, 176, "q8_k"),
    "q6_k": (T.Q6_K, QK_K, 210, "q8_k"),
    # last, so that adding them left the random streams of the others as
    # they were (the files above regenerate byte for byte)
    "q5_1": (T.Q5_1, 32, 24, "q8_1"),
    "q8_1": (T.Q8_1, 32, 36, "q8_1"),
    # after Q5_1/Q8_1 for the same reason
    "q4_1": (T.Q4_1, 32, 20, "q8_1"),
}


class Ggml:
    def __init__(self, libdir):
        mode = getattr(ctypes, "RTLD_GLOBAL", 0)
        self.base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=mode)
        self.cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"), mode=mode)
        self.cpu.ggml_cpu_init()

    def quantize(self, name, x):
        _, bs, ts, _ = FORMATS[name]
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros(len(x) // bs * ts, dtype=np.uint8)
        if name == "f16":
            f = self.base.ggml_fp32_to_fp16
            f.restype = ctypes.c_uint16
            f.argtypes = [ctypes.c_float]
            return np.array([f(float(v)) for v in x], dtype="<u2").view(np.uint8)
        if name == "bf16":
            f = self.base.ggml_fp32_to_bf16_row_ref
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
            f(x.ctypes.data, out.ctypes.data, len(x))
            return out
        f = getattr(self.base, f"quantize_row_{name[:-1]}{name[-1].upper() if name.endswith('k') else name[-1]}_ref")
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        f(x.ctypes.data, out.ctypes.data, len(x))
        return out

    def dequantize(self, name, b):
        if name == "q8_1":
            return dequantize_q8_1(b)
        _, bs, ts, _ = FORMATS[name]
        b = np.ascontiguousarray(b, dtype=np.uint8)
        n = len(b) // ts * bs
        out = np.zeros(n, dtype=np.float32)
        fname = {"f16": "ggml_fp16_to_fp32_row", "bf16": "ggml_bf16_to_fp32_row"}.get(name)
        if fname is None:
            fname = f"dequantize_row_{name[:-1]}{name[-1].upper() if name.endswith('k') else name[-1]}"
        f = getattr(self.base, fname)
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        f(b.ctypes.data, out.ctypes.data, n)
        return out

    def vec_dot(self, name, w, a, generic=False):
        """ggml-cpu's dot product: the dispatching kernel (what llama.cpp
        runs; SIMD on this build) or the scalar `*_generic` one."""
        _, bs, ts, vdt = FORMATS[name]
        n = len(w) // ts * bs
        if name in ("f32", "f16", "bf16"):
            fname = f"ggml_vec_dot_{name}"
        else:
            up = lambda s: s[:-1] + s[-1].upper() if s.endswith("k") else s
            fname = f"ggml_vec_dot_{up(name)}_{up(vdt)}" + ("_generic" if generic else "")
        f = getattr(self.cpu, fname)
        f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                      ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        w = np.ascontiguousarray(w, dtype=np.uint8)
        a = np.ascontiguousarray(a, dtype=np.uint8)
        s = np.zeros(1, dtype=np.float32)
        f(n, s.ctypes.data, 0, w.ctypes.data, 0, a.ctypes.data, 0, 1)
        return s


def dequantize_q8_1(b):
    """ggml has no dequantize_row_q8_1 (nor gguf-py any Q8_1): the layout's
    qs * d, in f32 (exact products, as Q8_0's)."""
    blk = np.ascontiguousarray(b, dtype=np.uint8).reshape(-1, 36)
    d = blk[:, 0:2].copy().view(np.float16).astype(np.float32)
    return (blk[:, 4:].view(np.int8).astype(np.float32) * d).reshape(-1)


def hexs(a):
    return np.ascontiguousarray(a).view(np.uint8).tobytes().hex()


def f32hex(a):
    return hexs(np.asarray(a, dtype="<f4"))


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    b = np.ascontiguousarray(b, dtype=np.float32).view(np.uint32)
    return a.shape == b.shape and bool((a == b).all())


def rand_f16(rng, n, lo=-4, hi=1):
    """Finite f16 scales of random sign and magnitude 10^[lo,hi)."""
    v = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(lo, hi, n)
    return v.astype(np.float16)


def random_blocks(rng, name, nblocks):
    """Valid blocks with random payload bytes and sane (finite) scales;
    block 0 gets a tiny (subnormal f16) scale, block 1 a negative one."""
    _, bs, ts, _ = FORMATS[name]
    out = []
    for i in range(nblocks):
        b = rng.integers(0, 256, ts, dtype=np.uint8)
        d = rand_f16(rng, 2)
        if i == 0:
            d[0] = np.float16(3e-6)  # subnormal in f16
        if i == 1:
            d[0] = -abs(d[0])
        if name in ("q4_0", "q5_0", "q8_0"):
            b[0:2] = d[:1].view(np.uint8)
        elif name in ("q4_k", "q5_k", "q5_1", "q4_1"):
            b[0:4] = d.view(np.uint8)
        elif name == "q8_1":
            # s = d * sum(qs), as the quantizer writes it
            s = float(d[0]) * float(b[4:].view(np.int8).astype(np.int32).sum())
            b[0:2] = d[:1].view(np.uint8)
            b[2:4] = np.array([s], dtype=np.float16).view(np.uint8)
        elif name in ("q4_k", "q5_k"):
            b[0:4] = d.view(np.uint8)
        elif name == "q6_k":
            b[208:210] = d[:1].view(np.uint8)
        elif name == "q8_k":
            b[0:4] = np.array([float(d[0]) * 0.01], dtype="<f4").view(np.uint8)
        out.append(b)
    return np.concatenate(out)


def float_rows(rng, n):
    """Inputs for the quantizers, one distribution per block of `n`."""
    rows = [
        rng.normal(0, 1, n),
        rng.uniform(-1, 1, n) * 1e-3,
        np.where(rng.random(n) < 0.05, rng.normal(0, 30, n), rng.normal(0, 0.1, n)),
        rng.uniform(0.5, 2.0, n),                      # all positive
        -rng.uniform(0.0, 3.0, n),                     # all non-positive
        np.zeros(n),
        np.full(n, 0.3),
        rng.normal(0, 1, n) * 1e4,
    ]
    return [r.astype(np.float32) for r in rows]


def tie_row(n):
    """Q8_0/Q8_K round at exact halves: amax 127 (Q8_0: d = 1, 1/d = 1;
    Q8_K: max = -127 so iscale = 1) and .5 values; roundf goes away from
    zero, nearest_int to even."""
    v = np.tile(np.array([2.5, -2.5, 0.5, -0.5, 1.5, 3.5, -3.5, 126.5], np.float32), n // 8)
    v[0] = -127.0
    return v


def special_floats():
    bits = np.array([
        0x00000000, 0x80000000, 0x3f800000, 0xbf800000, 0x7f800000, 0xff800000,
        0x7fc00000, 0xffc00000, 0x7fa00001, 0x7f800001, 0xff812345, 0x7fffffff,  # NaNs
        0x00000001, 0x807fffff, 0x00800000, 0x7f7fffff, 0xff7fffff,
        0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f807fff, 0x477fe000, 0x477ff000,
        0x387fc000, 0x33800000, 0x33000000, 0x33000001, 0xb3800001,
    ], dtype=np.uint32)
    return bits.view(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml-lib-dir", default="/root/.cache/shohin-peer/build/bin")
    args = ap.parse_args()
    g = Ggml(args.ggml_lib_dir)
    rng = np.random.default_rng(20240611)
    os.makedirs(OUT, exist_ok=True)
    total = 0

    for name, (qt, bs, ts, vdt) in FORMATS.items():
        doc = {"format": name.upper(), "generator": "tests/data/gen_standard.py",
               "dequantize": [], "quantize": [], "vec_dot": []}
        # ---- dequantize
        if name in ("f32", "f16", "bf16"):
            if name == "f32":
                src = np.concatenate([special_floats(), rng.normal(0, 10, 36).astype(np.float32)]).view(np.uint8)
            else:
                raw = rng.integers(0, 1 << 16, 64, dtype=np.uint64).astype(np.uint16)
                raw[:6] = [0x0000, 0x8000, 0x7c00, 0xfc00, 0x0001, 0x83ff]
                if name == "f16":
                    # only quiet NaNs: signalling ones are quieted differently
                    # by F16C/numpy/half
                    nan = ((raw & 0x7c00) == 0x7c00) & ((raw & 0x3ff) != 0)
                    raw[nan] |= 0x0200
                    raw[6] = 0x7e00
                src = raw.view(np.uint8)
            nblocks = len(src) // ts
        else:
            nblocks = 3 if bs == QK_K else 8
            src = random_blocks(rng, name, nblocks)
        ref = []
        exp = None
        if name not in ("q8_k", "q8_1"):
            exp = gq.dequantize(src, qt).reshape(-1)
            ref.append("gguf-py")
        if name == "q8_1":
            exp = dequantize_q8_1(src)
            ref.append("numpy qs*d")
        elif name != "f32":
            ex2 = g.dequantize(name, src)
            if exp is not None:
                assert same_bits(exp, ex2), f"{name}: gguf-py and ggml dequantize differ"
            exp = ex2
            ref.append("ggml " + ("dequantize_row" if bs > 1 else "fp32 conversion"))
        doc["dequantize"].append({"ref": " = ".join(ref), "src": hexs(src), "dst": f32hex(exp)})

        # ---- quantize
        if name == "f32":
            pass
        elif name in ("f16", "bf16"):
            x = np.concatenate([special_floats(), rng.normal(0, 1, 36).astype(np.float32),
                                (rng.normal(0, 1, 32) * 1e-6).astype(np.float32)])
            got = g.quantize(name, x)
            ref = "ggml " + ("ggml_fp32_to_fp16" if name == "f16" else "ggml_fp32_to_bf16_row_ref")
            py = gq.quantize(x, qt).view(np.uint8).reshape(-1)
            if name == "f16":
                finite = ~np.isnan(x)
                # numpy keeps NaN payloads, ggml writes 0x7e00: compare non-NaN only
                assert (py.view("<u2")[finite] == got.view("<u2")[finite]).all(), "f16 quantize differs"
                nan_out = got.view("<u2")[~finite]
                assert ((nan_out & 0x7fff) == 0x7e00).all()
            else:
                assert (py == got).all(), "bf16 quantize differs"
            doc["quantize"].append({"ref": "gguf-py = " + ref if name == "bf16" else ref + " (= gguf-py except NaN)",
                                    "src": f32hex(x), "dst": hexs(got)})
        else:
            rows = float_rows(rng, bs)
            if name in ("q8_0", "q8_k", "q8_1"):
                rows.append(tie_row(bs))
            if bs == QK_K:
                # keep the data small: normal, tiny, outliers, all positive,
                # all zero, constant (+ the tie row for Q8_K)
                rows = [rows[i] for i in (0, 1, 2, 3, 5, 6)] + rows[8:]
            x = np.concatenate(rows)
            got = g.quantize(name, x)
            ref = "ggml quantize_row_" + name + "_ref"
            if qt in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
                py = gq.quantize(x, qt).reshape(-1)
                assert (py == got).all(), f"{name}: gguf-py and ggml quantize differ"
                ref = "gguf-py = " + ref
            doc["quantize"].append({"ref": ref, "src": f32hex(x), "dst": hexs(got)})

        # ---- vec_dot (ggml has no Q8_K x Q8_K nor Q8_1 x Q8_1 kernel)
        lengths = [] if name in ("q8_k", "q8_1") else [7, 64] if bs == 1 else ([1, 2] if bs == QK_K else [1, 2, 7])
        for nb in lengths:
            n = nb * bs
            xa = rng.normal(0, 1, n).astype(np.float32)
            if bs == 1:
                w = g.quantize(name, rng.normal(0, 1, n).astype(np.float32)) if name != "f32" \
                    else rng.normal(0, 1, n).astype(np.float32).view(np.uint8)
                a = g.quantize(vdt, xa) if name != "f32" else xa.view(np.uint8)
            else:
                w = g.quantize(name, rng.normal(0, 1, n).astype(np.float32)) if nb != 2 \
                    else random_blocks(rng, name, nb)
                a = g.quantize(vdt, xa)
            dot = g.vec_dot(name, w, a)
            case = {"ref": "ggml-cpu ggml_vec_dot (dispatching kernel)",
                    "w": hexs(w), "a": hexs(a), "dot": f32hex(dot)}
            if bs > 1:
                # The scalar `*_generic` kernels should agree up to f32
                # rounding order. GCC 12.2 -O3 -march=native miscompiles
                # ggml_vec_dot_q5_0_q8_0_generic (int8 wrap of q-16 lost),
                # so a disagreement is recorded, not fatal.
                gen = g.vec_dot(name, w, a, generic=True)
                wd = g.dequantize(name, w).astype(np.float64)
                ad = g.dequantize(vdt, a).astype(np.float64)
                mag = float(np.abs(wd * ad).sum())
                agrees = abs(float(gen[0]) - float(dot[0])) <= 1e-5 * mag
                case["generic_agrees"] = agrees
                if not agrees:
                    print(f"warning: {name} n={n}: generic {gen[0]} vs dispatching {dot[0]}")
            doc["vec_dot"].append(case)

        path = os.path.join(OUT, name + ".json")
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    sys.exit(main())

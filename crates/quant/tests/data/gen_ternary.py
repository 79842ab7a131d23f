#!/usr/bin/env python3
"""Generate the known-answer vectors in tests/data/ternary/ for Q1_0, Q2_0 (g64),
Q2_0 g128 / PQ2_0, TQ1_0 and TQ2_0. NOT run in CI: the JSON it writes is
committed.

Every expected value comes from references independent of the Rust code, and
where two exist the script checks that they agree before writing anything:

* ggml's own C code, loaded with ctypes from a llama.cpp build
  (libggml-base: quantize_row_*_ref, dequantize_row_*; libggml-cpu: the
  scalar ggml_vec_dot_*_generic kernels), for Q1_0, Q2_0, TQ1_0, TQ2_0;
* gguf-py (gguf/quants.py) for TQ1_0 and TQ2_0, which it implements;
* a numpy transcription of the ggml C definitions written here for Q1_0,
  Q2_0 and the PrismML g128 layout (gguf-py has no Q1_0/Q2_0 class; PrismML's
  PQ2_0 is not in upstream ggml at all). The dot products are emulated with
  numpy float32 scalars, one rounding per C operation, in the C order.

usage:
  PYTHONPATH=<llama.cpp>/gguf-py python3 gen_ternary.py \
      [--ggml-lib-dir <llama.cpp build>/bin] [--fixtures ../../../../../shared/fixtures]

With the peer build of shared/peer/build-llama-cpp.sh the defaults work.
"""
import argparse
import ctypes
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ternary")
QK_K = 256

# ----------------------------------------------------------------- helpers


def f32s(a):
    """Shortest decimals that give back the float32 values when parsed as
    f64 and rounded to f32 (checked here, double rounding included)."""
    a = np.asarray(a, dtype=np.float32).ravel()
    out = [float(str(v)) for v in a]
    back = np.array(out, dtype=np.float64).astype(np.float32)
    assert np.array_equal(back.view(np.uint32), a.view(np.uint32))
    return out


def hexb(a):
    return bytes(np.asarray(a, dtype=np.uint8).ravel()).hex()


def f16_bytes(d):
    return np.asarray(d, dtype=np.float16).reshape(-1).view(np.uint8)


# --------------------------------------------------------- numpy references
# transcribed from ggml-quants.c / ggml-cpu/quants.c (upstream) and the
# PrismML fork's pq2_0 functions; no code shared with the Rust crate.


def np_round_away(x):
    """C roundf / lroundf: halves away from zero."""
    # in f64 |x| + 0.5 is exact for these magnitudes, so 0.49999997 stays
    # below 1 (the f32 sum would round up to 1.0)
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def np_dequant_q1_0(raw):
    blk = raw.reshape(-1, 18)
    d = blk[:, :2].copy().view(np.float16).astype(np.float32)
    bits = np.unpackbits(blk[:, 2:], axis=-1, bitorder="little").astype(np.float32)
    return np.where(bits == 1, d, -d).ravel()


def np_quant_q1_0(x):
    out = []
    for b in x.reshape(-1, 128):
        s = np.float32(0)
        for v in b:  # left to right in f32, like the C loop
            s = np.float32(s + np.abs(v))
        d = np.float32(s / np.float32(128))
        bits = (b >= 0).astype(np.uint8)
        out.append(np.concatenate([f16_bytes(d), np.packbits(bits, bitorder="little")]))
    return np.concatenate(out)


def np_dequant_q2(raw, g):
    blk = raw.reshape(-1, 2 + g // 4)
    d = blk[:, :2].copy().view(np.float16).astype(np.float32)
    q = blk[:, 2:]
    codes = np.stack([(q >> (2 * i)) & 3 for i in range(4)], axis=-1).reshape(-1, g)
    return ((codes.astype(np.int32) - 1).astype(np.float32) * d).ravel()


def np_quant_q2(x, g):
    out = []
    for b in x.reshape(-1, g):
        amax = np.float32(0)
        for v in b:
            if abs(v) > amax:
                amax = np.float32(abs(v))
        d = amax
        idv = np.float32(1) / d if d > 0 else np.float32(0)
        q = np.clip(np_round_away(b * idv).astype(np.int32) + 1, 0, 3).astype(np.uint8)
        q = q.reshape(-1, 4)
        packed = q[:, 0] | (q[:, 1] << 2) | (q[:, 2] << 4) | (q[:, 3] << 6)
        out.append(np.concatenate([f16_bytes(d), packed]))
    return np.concatenate(out)


def np_vec_dot_q2(w, a, g, bb, codes_fn):
    """ggml_vec_dot_q{1,2}_0_q8_0_generic / pq2_0 generic, f32 op by op."""
    wb = w.reshape(-1, bb)
    ab = a.reshape(-1, 34)
    per = g // 32
    sumf = np.float32(0)
    for i, blk in enumerate(wb):
        d0 = blk[:2].copy().view(np.float16).astype(np.float32)[0]
        vals = codes_fn(blk)  # int weights in block order
        sumi = np.float32(0)
        for k in range(per):
            y = ab[i * per + k]
            d1 = y[:2].copy().view(np.float16).astype(np.float32)[0]
            qy = y[2:].view(np.int8).astype(np.int64)
            sb = int(np.dot(vals[32 * k : 32 * k + 32].astype(np.int64), qy))
            sumi = np.float32(sumi + np.float32(d1 * np.float32(sb)))
        sumf = np.float32(sumf + np.float32(d0 * sumi))
    return sumf


def q1_codes(blk):
    return np.unpackbits(blk[2:], bitorder="little").astype(np.int64) * 2 - 1


def q2_codes(blk):
    q = blk[2:]
    return np.stack([(q >> (2 * i)) & 3 for i in range(4)], axis=-1).ravel().astype(np.int64) - 1


def np_vec_dot_tq(w_deq_int, d_w, a):
    """ggml_vec_dot_tq{1,2}_0_q8_K_generic: integer sum per block, then
    sumf += sum * (dw * dy) (tq1) -- tq2 multiplies dy * dw, the same."""
    ab = a.reshape(-1, 292)
    sumf = np.float32(0)
    for i, y in enumerate(ab):
        dy = y[:4].copy().view(np.float32)[0]
        qy = y[4:260].view(np.int8).astype(np.int64)
        s = int(np.dot(w_deq_int[i], qy))
        sumf = np.float32(sumf + np.float32(np.float32(s) * np.float32(d_w[i] * dy)))
    return sumf


# ------------------------------------------------------------- C references


class Ggml:
    def __init__(self, libdir):
        self.base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
        self.cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"))
        if hasattr(self.cpu, "ggml_cpu_init"):
            self.cpu.ggml_cpu_init()

    def quant(self, name, x, type_size, qk):
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.zeros(len(x) // qk * type_size, dtype=np.uint8)
        fn = getattr(self.base, name)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn(x.ctypes.data, y.ctypes.data, len(x))
        return y

    def dequant(self, name, raw, n):
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        y = np.zeros(n, dtype=np.float32)
        fn = getattr(self.base, name)
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn(raw.ctypes.data, y.ctypes.data, n)
        return y

    def vec_dot(self, name, n, w, a):
        w = np.ascontiguousarray(w, dtype=np.uint8)
        a = np.ascontiguousarray(a, dtype=np.uint8)
        s = ctypes.c_float(0)
        fn = getattr(self.cpu, name)
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t,
                       ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
                       ctypes.c_int]
        fn(n, ctypes.byref(s), 0, w.ctypes.data, 0, a.ctypes.data, 0, 1)
        return np.float32(s.value)


# ------------------------------------------------------------ random inputs


SPECIAL_SCALES = np.array([1.0, 6.1e-5, 3.0e-7, -0.75, 65504.0, 0.0, 0.0313], dtype=np.float16)


def rand_f16_scales(rng, n, start=0):
    """Scales covering normal, subnormal, negative, the f16 max and zero:
    SPECIAL_SCALES[start:], then random ones."""
    d = rng.uniform(0.001, 2.0, size=n).astype(np.float16)
    sp = SPECIAL_SCALES[start:start + n]
    d[: len(sp)] = sp
    return d


def rand_weight_blocks(rng, nblk, bb, scales):
    raw = rng.integers(0, 256, size=(nblk, bb), dtype=np.uint8)
    raw[:, :2] = f16_bytes(scales[:nblk]).reshape(nblk, 2)
    return raw.ravel()


def rand_q8_0(rng, nblk):
    raw = np.zeros((nblk, 34), dtype=np.uint8)
    d = rng.uniform(0.001, 0.05, size=nblk).astype(np.float16)
    raw[:, :2] = f16_bytes(d).reshape(nblk, 2)
    raw[:, 2:] = rng.integers(-128, 128, size=(nblk, 32)).astype(np.int8).view(np.uint8)
    return raw.ravel()


def q8_0_values(a):
    ab = a.reshape(-1, 34)
    d = ab[:, :2].copy().view(np.float16).astype(np.float64)
    return (ab[:, 2:].view(np.int8).astype(np.float64) * d).ravel()


def rand_q8_k(rng, nblk):
    raw = np.zeros((nblk, 292), dtype=np.uint8)
    d = rng.uniform(1e-3, 0.05, size=nblk).astype(np.float32)
    qs = rng.integers(-127, 128, size=(nblk, 256)).astype(np.int8)
    bsums = qs.astype(np.int16).reshape(nblk, 16, 16).sum(axis=-1).astype(np.int16)
    raw[:, :4] = d.view(np.uint8).reshape(nblk, 4)
    raw[:, 4:260] = qs.view(np.uint8)
    raw[:, 260:] = bsums.view(np.uint8).reshape(nblk, 32)
    return raw.ravel()


def q8_k_values(a):
    ab = a.reshape(-1, 292)
    d = ab[:, :4].copy().view(np.float32).astype(np.float64)
    return (ab[:, 4:260].view(np.int8).astype(np.float64) * d).ravel()


def quant_inputs(rng, qk):
    """Rows that exercise the quantizers: gaussian with a spread of scales,
    exact ties x/amax = +-0.5, zeros and -0.0, and a block of exact ternary
    values."""
    rows = []
    g = rng.standard_normal(2 * qk).astype(np.float32)
    g[qk:] *= np.float32(1e-3)
    rows.append(g)
    t = rng.standard_normal(qk).astype(np.float32)
    t[0] = np.float32(4.0)
    t[1:9] = np.float32(2.0) * np.array([1, -1, 1, -1, 1, -1, 1, -1], dtype=np.float32)
    t[9:13] = np.array([0.0, -0.0, 1.9999999, -2.0000002], dtype=np.float32)
    t[13:30] = np.float32(0.0)
    rows.append(t)
    tern = (rng.integers(-1, 2, size=qk) * 0.37).astype(np.float32)
    tern[0] = np.float32(0.37)
    rows.append(tern)
    return rows


# ------------------------------------------------------------------ formats


def dot64(w_vals, a_vals):
    return float(np.dot(np.asarray(w_vals, dtype=np.float64), a_vals))


def q1_order_sensitive_block(rng):
    """A Q1_0 block whose f16 scale depends on summing |x| left to right in
    f32 (as the C loop does): the exact mean rounds to another f16."""
    for _ in range(100000):
        b = (rng.standard_normal(128) * np.exp(rng.uniform(-6, 6, 128))).astype(np.float32)
        seq = np.cumsum(np.abs(b), dtype=np.float32)[-1] / np.float32(128)
        exact = np.abs(b).astype(np.float64).sum() / 128
        if np.float16(seq) != np.float16(exact):
            return b
    raise SystemExit("no order-sensitive block found")


def gen_q_family(rng, ggml, name, qk, bb, np_deq, np_q, codes_fn, c_names):
    """Q1_0, Q2_0 g64 and g128: the numpy transcription always, ggml's C
    when c_names is given (asserting agreement)."""
    c_deq, c_q, c_dot = c_names or (None, None, None)
    doc = {"type": name, "block_size": qk, "type_size": bb, "dequantize": [], "quantize": [],
           "vec_dot": []}
    for nblk, start in ((2, 5), (5, 0)):
        raw = rand_weight_blocks(rng, nblk, bb, rand_f16_scales(rng, nblk, start))
        y = np_deq(raw)
        if c_deq:
            yc = ggml.dequant(c_deq, raw, nblk * qk)
            assert np.array_equal(y.view(np.uint32), yc.view(np.uint32)), name
        assert np.all(np.isfinite(y))
        doc["dequantize"].append({"bytes": hexb(raw), "values": f32s(y)})
    inputs = quant_inputs(rng, qk)
    if name == "Q1_0":
        inputs.append(q1_order_sensitive_block(rng))
    for x in inputs:
        q = np_q(x)
        if c_q:
            qc = ggml.quant(c_q, x, bb, qk)
            assert np.array_equal(q, qc), name
        doc["quantize"].append({"input": f32s(x), "bytes": hexb(q)})
    for nblk in (1, 2, 7):
        scales = rng.uniform(0.01, 0.2, size=nblk).astype(np.float16)
        w = rand_weight_blocks(rng, nblk, bb, scales)
        a = rand_q8_0(rng, nblk * qk // 32)
        s = np_vec_dot_q2(w, a, qk, bb, codes_fn)
        if c_dot:
            sc = ggml.vec_dot(c_dot, nblk * qk, w, a)
            assert s.view(np.uint32) == sc.view(np.uint32), (name, s, sc)
        doc["vec_dot"].append({"w": hexb(w), "a": hexb(a), "expected": float(s),
                               "f64": dot64(np_deq(w), q8_0_values(a))})
    return doc


def gen_tq(rng, ggml, name, gq_cls, bb, c_names, unpack_int):
    c_deq, c_q, c_dot = c_names
    doc = {"type": name, "block_size": QK_K, "type_size": bb, "dequantize": [], "quantize": [],
           "vec_dot": []}
    for nblk, start in ((1, 3), (2, 4)):
        # random packed bytes (TQ1_0 bytes above 242 included: they must
        # decode as the C formula says); the scale is the last two bytes
        r2 = rng.integers(0, 256, size=(nblk, bb), dtype=np.uint8)
        r2[:, -2:] = f16_bytes(rand_f16_scales(rng, nblk, start)).reshape(nblk, 2)
        raw = r2.ravel()
        y = gq_cls.dequantize(raw.reshape(nblk, bb).copy()).astype(np.float32).ravel()
        yc = ggml.dequant(c_deq, raw, nblk * QK_K)
        assert np.array_equal(y.view(np.uint32), yc.view(np.uint32)), name
        assert np.all(np.isfinite(y))
        doc["dequantize"].append({"bytes": hexb(raw), "values": f32s(y)})
    for x in quant_inputs(rng, QK_K):
        q = np.asarray(gq_cls.quantize(x.reshape(-1, QK_K)), dtype=np.uint8).ravel()
        qc = ggml.quant(c_q, x, bb, QK_K)
        assert np.array_equal(q, qc), name
        doc["quantize"].append({"input": f32s(x), "bytes": hexb(q)})
    for nblk in (1, 2, 7):
        # valid packed weights: quantize random ternary rows with ggml
        x = (rng.integers(-1, 2, size=nblk * QK_K)).astype(np.float32)
        x *= rng.uniform(0.01, 0.2, size=nblk).astype(np.float32).repeat(QK_K)
        raw = ggml.quant(c_q, x, bb, QK_K)
        a = rand_q8_k(rng, nblk)
        wq = ggml.dequant(c_deq, raw, nblk * QK_K)
        dw = raw.reshape(nblk, bb)[:, -2:].copy().view(np.float16).astype(np.float32).ravel()
        ints = unpack_int(wq.reshape(nblk, QK_K), dw)
        s = np_vec_dot_tq(ints, dw, a)
        sc = ggml.vec_dot(c_dot, nblk * QK_K, raw, a)
        assert s.view(np.uint32) == sc.view(np.uint32), (name, s, sc)
        doc["vec_dot"].append({"w": hexb(raw), "a": hexb(a), "expected": float(s),
                               "f64": dot64(wq, q8_k_values(a))})
    return doc


def tq_ints(wq, dw):
    r = np.where(dw[:, None] != 0, wq / np.where(dw[:, None] != 0, dw[:, None], 1), 0)
    ri = np.rint(r).astype(np.int64)
    assert np.all(np.abs(ri) <= 1) and np.allclose(r, ri)
    return ri


def gen_fixture_rows(fixtures, ggml):
    """Raw rows of the synthetic Bonsai-shaped fixtures (tools/synth_gguf.py)
    and their values from ggml's dequantizers and the numpy transcription."""
    from gguf import GGUFReader

    doc = {"rows": []}
    for fname, tid, qk, bb, deq_c, np_deq in (
        ("tiny-q1_0.gguf", 41, 128, 18, "dequantize_row_q1_0", np_dequant_q1_0),
        ("tiny-q2_0.gguf", 42, 64, 18, "dequantize_row_q2_0", lambda r: np_dequant_q2(r, 64)),
    ):
        r = GGUFReader(os.path.join(fixtures, fname))
        t = next(t for t in r.tensors if t.name == "blk.0.attn_q.weight")
        assert int(t.tensor_type) == tid
        cols = int(t.shape[0])
        data = np.asarray(t.data).view(np.uint8).reshape(-1, cols // qk * bb)
        for row in (0, 77):
            raw = data[row].copy()
            y = np_deq(raw)
            yc = ggml.dequant(deq_c, raw, cols)
            assert np.array_equal(y.view(np.uint32), yc.view(np.uint32))
            doc["rows"].append({"file": fname, "tensor": t.name, "row": row, "type_id": tid,
                                "bytes": hexb(raw), "values": f32s(y)})
    return doc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml-lib-dir", default="/root/.cache/shohin-peer/build/bin")
    ap.add_argument("--fixtures", default=os.path.join(HERE, "../../../../../shared/fixtures"))
    ap.add_argument("--seed", type=int, default=20240611)
    a = ap.parse_args()
    from gguf import quants as gq

    ggml = Ggml(a.ggml_lib_dir)
    rng = np.random.default_rng(a.seed)
    os.makedirs(OUT, exist_ok=True)
    docs = {
        "q1_0": gen_q_family(rng, ggml, "Q1_0", 128, 18, np_dequant_q1_0, np_quant_q1_0, q1_codes,
                             ("dequantize_row_q1_0", "quantize_row_q1_0_ref",
                              "ggml_vec_dot_q1_0_q8_0_generic")),
        "q2_0": gen_q_family(rng, ggml, "Q2_0", 64, 18, lambda r: np_dequant_q2(r, 64),
                             lambda x: np_quant_q2(x, 64), q2_codes,
                             ("dequantize_row_q2_0", "quantize_row_q2_0_ref",
                              "ggml_vec_dot_q2_0_q8_0")),
        "q2_0_g128": gen_q_family(rng, ggml, "Q2_0_g128", 128, 34,
                                  lambda r: np_dequant_q2(r, 128), lambda x: np_quant_q2(x, 128),
                                  q2_codes, None),
        "tq1_0": gen_tq(rng, ggml, "TQ1_0", gq.TQ1_0, 54,
                        ("dequantize_row_tq1_0", "quantize_row_tq1_0_ref",
                         "ggml_vec_dot_tq1_0_q8_K_generic"), tq_ints),
        "tq2_0": gen_tq(rng, ggml, "TQ2_0", gq.TQ2_0, 66,
                        ("dequantize_row_tq2_0", "quantize_row_tq2_0_ref",
                         "ggml_vec_dot_tq2_0_q8_K_generic"), tq_ints),
        "fixture_rows": gen_fixture_rows(a.fixtures, ggml),
    }
    for k, v in docs.items():
        v["generator"] = "tests/data/gen_ternary.py --seed %d" % a.seed
        with open(os.path.join(OUT, k + ".json"), "w") as f:
            json.dump(v, f, separators=(",", ":"))
        print(k, os.path.getsize(os.path.join(OUT, k + ".json")), file=sys.stderr)


if __name__ == "__main__":
    main()

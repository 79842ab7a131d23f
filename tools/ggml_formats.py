"""Numpy packers and float64 dequantizers for the weight formats of the
synthetic test models, written from the format definitions (llama.cpp tree:
ggml/src/ggml-common.h `block_*` structs, ggml/src/ggml-quants.c
`quantize_row_*_ref` / `dequantize_row_*`; PrismML's g128 ternary layout as
documented in shohin's brief and crates/quant/src/q2_0_g128.rs).

Packers take integer codes and per-block scales (the generator draws those
directly, so no rounding decision is involved) and return the raw bytes of a
[rows, cols] matrix, row-major, rows of whole blocks. Dequantizers take raw
bytes and return float64 [rows, cols].

| format      | id  | block | bytes | layout                                               |
|-------------|-----|-------|-------|------------------------------------------------------|
| F32         | 0   | 1     | 4     | little-endian f32                                    |
| F16         | 1   | 1     | 2     | little-endian f16                                    |
| TQ1_0       | 34  | 256   | 54    | qs[48] (5 trits/byte), qh[4] (4 trits/byte), f16 d  |
| TQ2_0       | 35  | 256   | 66    | qs[64] (4 codes/byte, 32-byte stripes), f16 d       |
| Q1_0        | 41  | 128   | 18    | f16 d, qs[16]: bit j%8 of byte j/8, 1 -> +d, 0 -> -d |
| Q2_0 (g64)  | 42  | 64    | 18    | f16 d, qs[16]: code (qs[j/4] >> 2*(j%4)) & 3         |
| Q2_0 g128   | 42  | 128   | 34    | f16 d, qs[32]: same codec as g64, w = (code - 1) * d |
| PQ2_0       | 142 | 128   | 34    | identical bytes to Q2_0 g128                         |

For id 42 the two layouts are told apart by the bytes a tensor occupies
(`resolve`): the g64 size when it fits the slot, else g128.
"""

import numpy as np

QK_K = 256

# name: (type id, weights per block, bytes per block)
FORMATS = {
    "F32": (0, 1, 4),
    "F16": (1, 1, 2),
    "TQ1_0": (34, QK_K, 54),
    "TQ2_0": (35, QK_K, 66),
    "Q1_0": (41, 128, 18),
    "Q2_0": (42, 64, 18),
    "Q2_0_g128": (42, 128, 34),
    "PQ2_0": (142, 128, 34),
}


def nbytes(fmt, n):
    _, bs, sz = FORMATS[fmt]
    assert n % bs == 0, (fmt, n)
    return n // bs * sz


def resolve(type_id, n, slot):
    """The format of a tensor with `n` weights whose slot is `slot` bytes."""
    cands = {0: ["F32"], 1: ["F16"], 34: ["TQ1_0"], 35: ["TQ2_0"], 41: ["Q1_0"],
             42: ["Q2_0", "Q2_0_g128"], 142: ["PQ2_0"]}[type_id]
    for c in cands:
        bs = FORMATS[c][1]
        if n % bs == 0 and nbytes(c, n) <= slot:
            return c
    raise ValueError(f"type {type_id}: {n} weights do not fit {slot} bytes")


def _f16_bytes(d):
    """[..., 1] float -> [..., 2] uint8 (little-endian f16)."""
    return np.ascontiguousarray(d.astype("<f2")).view(np.uint8)


def _f16_of(b):
    """[..., 2] uint8 -> [...] float64."""
    return np.ascontiguousarray(b).view("<f2")[..., 0].astype(np.float64)


# ---------------------------------------------------------------- packers


def pack_q1_0(signs, d):
    """signs: [rows, cols] in {0, 1} (1 = +d); d: [rows, cols/128] f16-representable."""
    rows, cols = signs.shape
    nb = cols // 128
    bits = signs.reshape(rows, nb, 16, 8).astype(np.uint8)
    qs = np.zeros((rows, nb, 16), np.uint8)
    for b in range(8):  # bit b of byte i holds weight 8*i + b
        qs |= bits[..., b] << b
    return np.concatenate([_f16_bytes(d[..., None]), qs], axis=-1).tobytes()


def pack_q2(codes, d, group):
    """Q2_0 (group 64) or the g128 layout: codes [rows, cols] in 0..3 (weight
    = (code - 1) * d), d [rows, cols/group]."""
    rows, cols = codes.shape
    nb = cols // group
    c = codes.reshape(rows, nb, group // 4, 4).astype(np.uint8)
    qs = c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)
    return np.concatenate([_f16_bytes(d[..., None]), qs], axis=-1).tobytes()


def _trits_to_byte(t):
    """t: [..., k] trits (0..2), most significant first, k <= 5: the base-3
    number scaled to a byte with ceiling division by 243 (quantize_row_tq1_0_ref)."""
    q = np.zeros(t.shape[:-1], np.int64)
    for i in range(t.shape[-1]):
        q = q * 3 + t[..., i]
    q = q * 3 ** (5 - t.shape[-1])
    return ((q * 256 + 242) // 243).astype(np.uint8)


def pack_tq1_0(codes, d):
    """codes: [rows, cols] in 0..2 (weight = (code - 1) * d); d: [rows, cols/256]."""
    rows, cols = codes.shape
    nb = cols // QK_K
    c = codes.reshape(rows, nb, QK_K).astype(np.int64)
    # weights 0..160: byte m (of 32) holds weights m + 32*n, n = 0..4 (n = 0 most significant)
    a = c[..., :160].reshape(rows, nb, 5, 32).transpose(0, 1, 3, 2)
    # weights 160..240: byte 32+m (of 16) holds 160 + m + 16*n
    b = c[..., 160:240].reshape(rows, nb, 5, 16).transpose(0, 1, 3, 2)
    # weights 240..256: qh byte j (of 4) holds 240 + j + 4*n, n = 0..3
    h = c[..., 240:].reshape(rows, nb, 4, 4).transpose(0, 1, 3, 2)
    qs = np.concatenate([_trits_to_byte(a), _trits_to_byte(b), _trits_to_byte(h)], axis=-1)
    return np.concatenate([qs, _f16_bytes(d[..., None])], axis=-1).tobytes()


def pack_tq2_0(codes, d):
    """codes: [rows, cols] in 0..3 (weight = (code - 1) * d); d: [rows, cols/256]."""
    rows, cols = codes.shape
    nb = cols // QK_K
    # 32-byte stripe s (0, 1) holds weights 128*s + 32*l + m in byte m, bits 2l..2l+1
    c = codes.reshape(rows, nb, 2, 4, 32).astype(np.uint8)
    qs = c[:, :, :, 0] | (c[:, :, :, 1] << 2) | (c[:, :, :, 2] << 4) | (c[:, :, :, 3] << 6)
    qs = qs.reshape(rows, nb, 64)
    return np.concatenate([qs, _f16_bytes(d[..., None])], axis=-1).tobytes()


# ---------------------------------------------------------- dequantizers


def dequant(fmt, raw, rows, cols):
    """Raw bytes of a [rows, cols] tensor in `fmt` -> float64 [rows, cols]."""
    raw = np.asarray(raw, dtype=np.uint8)
    if fmt == "F32":
        return raw.view("<f4").astype(np.float64).reshape(rows, cols)
    if fmt == "F16":
        return raw.view("<f2").astype(np.float64).reshape(rows, cols)
    _, bs, sz = FORMATS[fmt]
    nb = cols // bs
    blk = raw.reshape(rows, nb, sz)
    if fmt == "Q1_0":
        d = _f16_of(blk[..., 0:2])[..., None]
        j = np.arange(128)
        bit = (blk[..., 2 + j // 8] >> (j % 8)) & 1  # dequantize_row_q1_0
        w = np.where(bit == 1, d, -d)
    elif fmt in ("Q2_0", "Q2_0_g128", "PQ2_0"):
        d = _f16_of(blk[..., 0:2])[..., None]
        j = np.arange(bs)
        code = (blk[..., 2 + j // 4] >> (2 * (j % 4))) & 3  # dequantize_row_q2_0
        w = (code.astype(np.float64) - 1) * d
    elif fmt == "TQ2_0":
        d = _f16_of(blk[..., 64:66])[..., None]
        j = np.arange(QK_K)  # weight j: byte 32*(j//128) + j%32, shift 2*((j%128)//32)
        code = (blk[..., 32 * (j // 128) + j % 32] >> (2 * ((j % 128) // 32))) & 3
        w = (code.astype(np.float64) - 1) * d
    elif fmt == "TQ1_0":
        d = _f16_of(blk[..., 52:54])[..., None]
        pow3 = np.array([1, 3, 9, 27, 81, 243], np.uint16)
        j = np.arange(QK_K)
        # (byte index, trit index) of weight j, in dequantize_row_tq1_0's order
        byte = np.where(j < 160, j % 32, np.where(j < 240, 32 + (j - 160) % 16, 48 + (j - 240) % 4))
        trit = np.where(j < 160, j // 32, np.where(j < 240, (j - 160) // 16, (j - 240) // 4))
        q = (blk[..., byte].astype(np.uint16) * pow3[trit]) & 0xFF  # uint8 wrap-around
        code = (q * 3) >> 8
        w = (code.astype(np.float64) - 1) * d
    else:
        raise ValueError(fmt)
    return w.reshape(rows, cols)

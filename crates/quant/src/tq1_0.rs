//! `TQ1_0` (GGUF type 34): ternary weights packed five per byte in base 3,
//! one f16 scale per 256 of them (1.6875 bits per weight).
//!
//! Layout of one block (ggml-common.h `block_tq1_0`, `QK_K = 256`), 54 bytes:
//!
//! | bytes   | field     | holds                                           |
//! |---------|-----------|-------------------------------------------------|
//! | 0..48   | `qs[48]`  | 240 weights, 5 per byte                         |
//! | 48..52  | `qh[4]`   | the last 16 weights, 4 per byte                 |
//! | 52..54  | `d`       | f16 scale, little-endian                        |
//!
//! Each byte stores trits `t0..t4` (`t = w + 1`, so 0, 1, 2 for -1, 0, +1)
//! as the fixed-point fraction `ceil(v * 256 / 243)` of
//! `v = t0*81 + t1*27 + t2*9 + t3*3 + t4` (`t0` most significant). Trit `n`
//! is read back by multiplying the byte by `3^n` modulo 256 (which shifts the
//! fraction left by `n` trits) and taking the top trit: `(q * 3) >> 8`
//! (ggml-quants.c `dequantize_row_tq1_0`, the `pow3` table).
//!
//! Which weight sits in which trit (ggml-quants.c `quantize_row_tq1_0_ref`):
//!
//! * `qs[m]`, m in 0..32: trit n is weight `n*32 + m` (weights 0..160);
//! * `qs[32 + m]`, m in 0..16: trit n is weight `160 + n*16 + m`
//!   (weights 160..240);
//! * `qh[j]`, j in 0..4: trit n (n in 0..4) is weight `240 + n*4 + j`; the
//!   fifth trit is always 0 (the quantizer multiplies by 3 once more).
//!
//! The quantizer sets `d` to the block's largest absolute value and each
//! trit to `lroundf(x / d) + 1`. The dot product
//! (ggml-cpu/quants.c `ggml_vec_dot_tq1_0_q8_K_generic`) sums trit times
//! `block_q8_K` quant in integers over the whole block and adds
//! `sum * (d * d_q8)` to the f32 row total.

use half::f16;

/// Weights per block (`QK_K`).
const QK: usize = 256;
/// Bytes of `qs`: `(QK_K - 4 * QK_K / 64) / 5`.
const QS_BYTES: usize = (QK - 4 * QK / 64) / 5;
/// Bytes of `qh`: `QK_K / 64`.
const QH_BYTES: usize = QK / 64;
/// Bytes per block.
const BLOCK_BYTES: usize = QS_BYTES + QH_BYTES + 2;
/// The `qs` bytes packed in runs of 32 (the rest in runs of 16).
const QS_RUN32: usize = QS_BYTES - QS_BYTES % 32;

/// Bytes of one `block_q8_K`: f32 scale, 256 i8, 16 i16 sums.
const Q8_K_BYTES: usize = 4 + QK + 2 * (QK / 16);

/// `pow3` of ggml-quants.c.
const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];

/// Trit `n` (most significant first) of a packed byte, as -1, 0 or 1
/// (shared with [`crate::ptq1_0`], the same codec).
pub(crate) fn trit(byte: u8, n: usize) -> i8 {
    let q = byte.wrapping_mul(POW3[n]);
    ((u16::from(q) * 3) >> 8) as i8 - 1
}

/// Unpack one block's 256 weights, in weight order, as -1/0/1 (values
/// above 242 in a byte decode to whatever the C formula gives).
fn unpack(blk: &[u8]) -> [i8; QK] {
    let mut w = [0i8; QK];
    // runs of 32 bytes, then runs of 16
    let runs = [(0, QS_RUN32), (QS_RUN32, QS_BYTES - QS_RUN32)];
    unpack_runs(blk, &runs, QS_BYTES..QS_BYTES + QH_BYTES, &mut w);
    w
}

/// The trit codec's weight order, shared with PTQ1_0 (which has other
/// runs): for each run `(first byte, bytes)` of `qs`, digit n of byte
/// `first + m` is the next weight for n in 0..5, m in 0..bytes (weight
/// `base + n * bytes + m`); then digit n of every `qh` byte, n in 0..4.
/// Fills all of `w`.
pub(crate) fn unpack_runs(
    blk: &[u8],
    runs: &[(usize, usize)],
    qh: std::ops::Range<usize>,
    w: &mut [i8],
) {
    let mut o = 0;
    for &(start, run) in runs {
        for n in 0..5 {
            for m in 0..run {
                w[o] = trit(blk[start + m], n);
                o += 1;
            }
        }
    }
    for n in 0..4 {
        for &b in &blk[qh.clone()] {
            w[o] = trit(b, n);
            o += 1;
        }
    }
    debug_assert_eq!(o, w.len());
}

/// The codes (trit + 1: 0..=2) of a block's 256 weights, in weight order
/// (for [`crate::packed`]).
pub(crate) fn codes(blk: &[u8]) -> [u8; QK] {
    unpack(blk).map(|t| (t + 1) as u8)
}

fn scale(blk: &[u8]) -> f32 {
    let b = &blk[QS_BYTES + QH_BYTES..];
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// Dequantize whole blocks (ggml-quants.c `dequantize_row_tq1_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BLOCK_BYTES * QK, dst.len());
    for (blk, out) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = scale(blk);
        for (y, t) in out.iter_mut().zip(unpack(blk)) {
            *y = f32::from(t) * d;
        }
    }
}

/// Pack trits (0, 1, 2), most significant first, into one byte:
/// `ceil(v * 256 / 243)` (shared with [`crate::ptq1_0`]).
pub(crate) fn pack(trits: impl Iterator<Item = u8>) -> u8 {
    let v = trits.fold(0u16, |q, t| q * 3 + u16::from(t));
    // (q * 256 + (243 - 1)) / 243 in the C: ceiling division
    (v * 256).div_ceil(243) as u8
}

/// Quantize whole blocks (ggml-quants.c `quantize_row_tq1_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK * BLOCK_BYTES, dst.len());
    for (x, blk) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        // ggml's MAX(a, b) is `a > b ? a : b`: a NaN propagates
        let mut amax = 0.0f32;
        for v in x {
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // lroundf(x * id) + 1; the clamp only matters for non-finite
        // products, where C is undefined
        let t = |i: usize| ((x[i] * id).round().clamp(-1.0, 1.0) as i32 + 1) as u8;

        let (run32, run16) = blk[..QS_BYTES].split_at_mut(QS_RUN32);
        for (m, q) in run32.iter_mut().enumerate() {
            *q = pack((0..5).map(|n| t(m + n * 32)));
        }
        let base = 5 * QS_RUN32;
        for (m, q) in run16.iter_mut().enumerate() {
            *q = pack((0..5).map(|n| t(base + m + n * 16)));
        }
        let base = 5 * QS_BYTES;
        for (j, q) in blk[QS_BYTES..QS_BYTES + QH_BYTES].iter_mut().enumerate() {
            // four trits, then a zero trit so the first is the most
            // significant of five
            *q = pack((0..4).map(|n| t(base + j + n * QH_BYTES)).chain([0]));
        }
        blk[QS_BYTES + QH_BYTES..].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
    }
}

/// Dot product with Q8_K activations
/// (ggml-cpu/quants.c `ggml_vec_dot_tq1_0_q8_K_generic`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    debug_assert_eq!(w.len() / BLOCK_BYTES * Q8_K_BYTES, a.len());
    let mut sumf = 0.0f32;
    for (blk, act) in w.chunks_exact(BLOCK_BYTES).zip(a.chunks_exact(Q8_K_BYTES)) {
        let dy = f32::from_le_bytes([act[0], act[1], act[2], act[3]]);
        let qy = &act[4..4 + QK];
        let sum: i32 = unpack(blk)
            .iter()
            .zip(qy)
            .map(|(&t, &q)| i32::from(t) * i32::from(q as i8))
            .sum();
        sumf += sum as f32 * (scale(blk) * dy);
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_ggml_common_h() {
        assert_eq!(QS_BYTES, 48);
        assert_eq!(QH_BYTES, 4);
        assert_eq!(BLOCK_BYTES, 54);
        assert_eq!(QS_RUN32, 32);
    }

    #[test]
    fn every_five_trit_value_round_trips_through_one_byte() {
        for v in 0..243u16 {
            let trits: Vec<u8> = (0..5).rev().map(|k| (v / 3u16.pow(k) % 3) as u8).collect();
            let b = pack(trits.iter().copied());
            for (n, &t) in trits.iter().enumerate() {
                assert_eq!(trit(b, n), t as i8 - 1, "v={v} n={n}");
            }
        }
    }

    #[test]
    fn known_bytes() {
        // all zeros (trit 1): v = 121, ceil(121*256/243) = 128
        assert_eq!(pack([1u8; 5].into_iter()), 128);
        // all +1 (trit 2): v = 242 -> 255; all -1: 0
        assert_eq!(pack([2u8; 5].into_iter()), 255);
        assert_eq!(pack([0u8; 5].into_iter()), 0);
        // +1 then four -1: v = 162 -> ceil(41472 / 243) = 171
        assert_eq!(pack([2, 0, 0, 0, 0].into_iter()), 171);
    }

    #[test]
    fn weight_positions_by_hand() {
        // one nonzero weight at a time, in each of the three regions, lands
        // in the byte and trit the layout table says
        for (pos, byte, n) in [
            (0, 0, 0),
            (33, 1, 1),
            (159, 31, 4),
            (160, 32, 0),
            (239, 47, 4),
            (240, 48, 0),
            (246, 50, 1),
            (252, 48, 3),
            (243, 51, 0),
        ] {
            let mut x = [0f32; QK];
            x[pos] = -1.5;
            let mut b = [0u8; BLOCK_BYTES];
            quantize(&x, &mut b);
            assert_eq!(scale(&b), 1.5);
            for (i, &v) in b[..QS_BYTES + QH_BYTES].iter().enumerate() {
                if i == byte {
                    let mut want = [1u8, 1, 1, 1, 1];
                    want[n] = 0;
                    if i >= QS_BYTES {
                        want[4] = 0;
                    }
                    assert_eq!(v, pack(want.into_iter()), "pos {pos}");
                } else if i < QS_BYTES {
                    assert_eq!(v, 128, "pos {pos} byte {i}");
                } else {
                    // four zero trits and the padding trit: v = 120 -> 127
                    assert_eq!(v, 127, "pos {pos} byte {i}");
                }
            }
            let mut y = [9f32; QK];
            dequantize(&b, &mut y);
            for (j, v) in y.iter().enumerate() {
                assert_eq!(*v, if j == pos { -1.5 } else { 0.0 }, "pos {pos} j {j}");
            }
        }
    }

    #[test]
    fn vec_dot_by_hand() {
        let mut x = [0f32; QK];
        x[3] = 2.0;
        x[200] = -2.0;
        x[250] = 2.0;
        let mut w = [0u8; BLOCK_BYTES];
        quantize(&x, &mut w);
        let mut a = vec![0u8; Q8_K_BYTES];
        a[..4].copy_from_slice(&0.5f32.to_le_bytes());
        for (j, q) in a[4..4 + QK].iter_mut().enumerate() {
            *q = (j % 7) as u8;
        }
        // (3 % 7) - (200 % 7) + (250 % 7) = 3 - 4 + 5 = 4; * 2 * 0.5
        assert_eq!(vec_dot(&w, &a), 4.0);
    }
}

//! `PTQ1_0` (GGUF type 143, PrismML's llama.cpp fork): ternary weights
//! packed five per byte in base 3, one f16 scale per 128 of them (1.75 bits
//! per weight). `TQ1_0`'s codec ([`crate::tq1_0`]) at half its block.
//!
//! Layout of one block (fork ggml-common.h `block_ptq1_0`,
//! `QK_PTQ1_0 = 128`), 28 bytes, the scale **last** (unlike `PQ2_0`):
//!
//! | bytes   | field     | holds                                           |
//! |---------|-----------|-------------------------------------------------|
//! | 0..24   | `qs[24]`  | 120 weights, 5 per byte                         |
//! | 24..26  | `qh[2]`   | the last 8 weights, 4 per byte                  |
//! | 26..28  | `d`       | f16 scale, little-endian                        |
//!
//! `qs` is `(128 - 4 * 128 / 64) / 5 = 24` bytes and `qh` `128 / 64 = 2`,
//! `TQ1_0`'s formulas at `QK = 128`.
//!
//! Each byte stores digits `t0..t4` (`t = w + 1`, so 0, 1, 2 for -1, 0,
//! +1) as the fixed-point fraction `ceil(v * 256 / 243)` of
//! `v = t0*81 + t1*27 + t2*9 + t3*3 + t4` (`t0` most significant); digit
//! `n` of byte `b` is `(((b * 3^n) mod 256) * 3) >> 8`. A `qh` byte holds
//! four digits and a fifth that is always 0 (the quantizer multiplies its
//! number by 3 once more, so the four sit in the top positions).
//!
//! Which weight sits in which digit: the fork fills `qs` in *stages* of 32,
//! 16 and 8 bytes (`TQ1_0`'s "runs of 32, then of 16" generalised; a
//! stage of `c` bytes holds `5c` weights, weight `n*c + m` of the stage in
//! digit `n` of its byte `m`); for 24 bytes only the 16 and 8 stages fit:
//!
//! * `qs[m]`, m in 0..16: digit n is weight `n*16 + m` (weights 0..80);
//! * `qs[16 + m]`, m in 0..8: digit n is weight `80 + n*8 + m`
//!   (weights 80..120);
//! * `qh[h]`, h in 0..2: digit n (n in 0..4) is weight `120 + n*2 + h`.
//!
//! So weight order is not byte order, and a wrong order still decodes to
//! valid ternary weights (only permuted): the tests pin it by hand.
//!
//! Sources. The codec (digit formula, `ceil(v * 256 / 243)`, the `qh`
//! padding digit, `lroundf`, `MAX(amax, fabsf(x))`) is upstream `TQ1_0`'s,
//! read in upstream ggml-quants.c (`quantize_row_tq1_0_ref`,
//! `dequantize_row_tq1_0`). The `PTQ1_0` block, its byte sizes, the stage
//! order and the type id are from shohin's notes on the fork
//! (docs/bonsai2-formats.md): the fork's own `block_ptq1_0` and
//! `quantize_row_ptq1_0_ref` / `dequantize_row_ptq1_0` were not readable
//! in any stored copy of the fork; several independent third-party
//! reimplementations that quote those functions agree with every item
//! above.
//!
//! The reference quantizer ([`quantize`], as `quantize_row_ptq1_0_ref`)
//! sets `d` to the block's largest absolute value and each digit to
//! `lroundf(x * (1/d)) + 1`: C `lroundf` rounds half away from zero, so a
//! product of exactly ±0.5 becomes ±1; the product (not a division) decides,
//! so `x = d/2` can land either side of 0.5 by an ulp. An all-zero block
//! stores `d = 0` and every digit 1.
//!
//! Dot product: against `Q8_0R` activations (the numbers of `Q8_0`, as
//! `PQ2_0`; the fork pairs `PTQ1_0` with `Q8_0`, `vec_dot_type`
//! `GGML_TYPE_Q8_0`), four activation blocks per weight block, in the f32
//! order of `PQ2_0`'s generic dot (see [`crate::q2_0`]): per activation
//! block the exact integer sum times the activation scale, added into a
//! per-block f32 sum, which times `d` goes into the row total. (The fork's
//! `ggml_vec_dot_ptq1_0_q8_0_generic` was not readable; its integer sums
//! are the same whatever its f32 order.)

use crate::q8_0r;
use crate::tq1_0::{pack, unpack_runs};
use half::f16;

/// Weights per block (`QK_PTQ1_0`).
pub(crate) const QK: usize = 128;
/// Bytes of `qs`: `(QK - 4 * QK / 64) / 5`.
const QS_BYTES: usize = (QK - 4 * QK / 64) / 5;
/// Bytes of `qh`: `QK / 64`.
const QH_BYTES: usize = QK / 64;
/// Offset of `d`.
pub(crate) const D_AT: usize = QS_BYTES + QH_BYTES;
/// Bytes per block.
pub(crate) const BLOCK_BYTES: usize = D_AT + 2;
/// The `qs` stages that fit 24 bytes: `(first byte, bytes)`.
const STAGES: [(usize, usize); 2] = [(0, 16), (16, 8)];

/// Unpack one block's 128 weights, in weight order, as -1/0/1 (bytes above
/// 242 decode to whatever the C formula gives, always a digit 0..=2).
fn unpack(blk: &[u8]) -> [i8; QK] {
    let mut w = [0i8; QK];
    unpack_runs(blk, &STAGES, QS_BYTES..D_AT, &mut w);
    w
}

/// The codes (digit = trit + 1: 0..=2) of a block's 128 weights, in weight
/// order (for [`crate::packed`]).
pub(crate) fn codes(blk: &[u8]) -> [u8; QK] {
    unpack(blk).map(|t| (t + 1) as u8)
}

fn scale(blk: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([blk[D_AT], blk[D_AT + 1]])).to_f32()
}

/// Dequantize whole blocks (fork ggml-quants.c `dequantize_row_ptq1_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BLOCK_BYTES * QK, dst.len());
    for (blk, out) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = scale(blk);
        for (y, t) in out.iter_mut().zip(unpack(blk)) {
            *y = f32::from(t) * d;
        }
    }
}

/// Quantize whole blocks (fork ggml-quants.c `quantize_row_ptq1_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK * BLOCK_BYTES, dst.len());
    for (x, blk) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        // ggml's MAX(a, b) is `a > b ? a : b`, as in `TQ1_0`
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

        let mut base = 0;
        for (start, run) in STAGES {
            for m in 0..run {
                blk[start + m] = pack((0..5).map(|n| t(base + n * run + m)));
            }
            base += 5 * run;
        }
        for (h, q) in blk[QS_BYTES..D_AT].iter_mut().enumerate() {
            // four digits, then a zero digit so the first is the most
            // significant of five
            *q = pack((0..4).map(|n| t(base + n * QH_BYTES + h)).chain([0]));
        }
        blk[D_AT..].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
    }
}

/// Dot product with `Q8_0R` activations (the fork's
/// `ggml_vec_dot_ptq1_0_q8_0_generic`, in `PQ2_0`'s f32 order).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    const PER: usize = QK / q8_0r::QK;
    debug_assert_eq!(w.len() / BLOCK_BYTES * QK, a.len() / q8_0r::BLOCK * 32);
    let (qa, da, _) = q8_0r::planes(a);
    let mut sumf = 0.0f32;
    for (i, (blk, act)) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(qa.chunks_exact(QK))
        .enumerate()
    {
        let t = unpack(blk);
        let mut sumi = 0.0f32;
        for (k, (tb, yb)) in t.chunks_exact(32).zip(act.chunks_exact(32)).enumerate() {
            let d1 = q8_0r::scale(da, PER * i + k);
            let s: i32 = tb
                .iter()
                .zip(yb)
                .map(|(&t, &q)| i32::from(t) * i32::from(q as i8))
                .sum();
            sumi += d1 * s as f32;
        }
        sumf += scale(blk) * sumi;
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tq1_0::trit;

    /// The f16 bits of 0.5 (sign 0, exponent 14, mantissa 0), by hand.
    const HALF: [u8; 2] = [0x00, 0x38];

    /// A block of zeros: every `qs` digit 1 (v = 121, ceil(121·256/243) =
    /// 128), every `qh` digit 1 plus the 0 pad (v = 120, -> 127), d = 0.5.
    fn zero_block() -> [u8; BLOCK_BYTES] {
        let mut b = [128u8; BLOCK_BYTES];
        b[24] = 127;
        b[25] = 127;
        b[26..].copy_from_slice(&HALF);
        b
    }

    /// The hand-made block of the known-answer tests:
    /// * `qs[3]` digits (2, 1, 1, 1, 0): v = 162 + 27 + 9 + 3 = 201,
    ///   ceil(201·256/243) = ceil(211.75) = 212: weight 3 (digit 0,
    ///   `0·16 + 3`) is +1, weight 67 (digit 4, `4·16 + 3`) is -1;
    /// * `qs[21]` (stage 8, m = 5) digits (1, 1, 0, 1, 2): v = 81 + 27 +
    ///   3 + 2 = 113, ceil(28928/243) = 120: weight `80 + 2·8 + 5 = 101`
    ///   is -1, weight `80 + 4·8 + 5 = 117` is +1;
    /// * `qh[1]` digits (1, 1, 1, 2) and the pad 0: v = (27 + 9 + 3 + 2)
    ///   times 3 = 123, ceil(31488/243) = 130: weight `120 + 3·2 + 1 =
    ///   127` is +1.
    fn hand_block() -> [u8; BLOCK_BYTES] {
        let mut b = zero_block();
        b[3] = 212;
        b[21] = 120;
        b[25] = 130;
        b
    }

    /// The weights of [`hand_block`], times d = 0.5.
    fn hand_weights() -> [f32; QK] {
        let mut x = [0f32; QK];
        for (j, v) in [(3, 0.5), (67, -0.5), (101, -0.5), (117, 0.5), (127, 0.5)] {
            x[j] = v;
        }
        x
    }

    #[test]
    fn geometry_matches_the_fork() {
        assert_eq!(QS_BYTES, 24);
        assert_eq!(QH_BYTES, 2);
        assert_eq!(D_AT, 26);
        assert_eq!(BLOCK_BYTES, 28);
    }

    #[test]
    fn dequantize_by_hand() {
        let mut y = [9f32; QK];
        dequantize(&zero_block(), &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
        dequantize(&hand_block(), &mut y);
        assert_eq!(y, hand_weights());
    }

    #[test]
    fn quantize_writes_the_hand_bytes() {
        let mut b = [0u8; BLOCK_BYTES];
        quantize(&hand_weights(), &mut b);
        assert_eq!(b, hand_block());
    }

    #[test]
    fn every_weight_position_by_hand() {
        // weight j alone at -1: its byte and digit from the layout's three
        // formulas, written out here independently of `unpack`
        for j in 0..QK {
            let (byte, n) = if j < 80 {
                (j % 16, j / 16)
            } else if j < 120 {
                (16 + (j - 80) % 8, (j - 80) / 8)
            } else {
                (24 + (j - 120) % 2, (j - 120) / 2)
            };
            let mut x = [0f32; QK];
            x[j] = -3.0;
            let mut b = [0u8; BLOCK_BYTES];
            quantize(&x, &mut b);
            let want = zero_block();
            for (i, (&got, &zero)) in b[..D_AT].iter().zip(&want[..D_AT]).enumerate() {
                if i == byte {
                    // digit n lowered from 1 to 0: v drops by 3^(4 - n)
                    let mut v: u16 = if i < 24 { 121 } else { 120 };
                    v -= 3u16.pow(4 - n as u32);
                    assert_eq!(u16::from(got), (v * 256).div_ceil(243), "j {j}");
                } else {
                    assert_eq!(got, zero, "j {j} byte {i}");
                }
            }
            let mut y = [9f32; QK];
            dequantize(&b, &mut y);
            for (k, &v) in y.iter().enumerate() {
                assert_eq!(v, if k == j { -3.0 } else { 0.0 }, "j {j} k {k}");
            }
        }
    }

    #[test]
    fn ties_round_away_from_zero() {
        // d = 4 (id = 0.25 exactly): ±2 is exactly ±0.5 -> ±1; 1.99 -> 0
        let mut x = [0f32; QK];
        x[0] = 4.0;
        x[1] = 2.0;
        x[2] = -2.0;
        x[3] = 1.99;
        x[4] = -1.0;
        let mut b = [0u8; BLOCK_BYTES];
        quantize(&x, &mut b);
        let mut y = [0f32; QK];
        dequantize(&b, &mut y);
        assert_eq!(&y[..6], &[4.0, 4.0, -4.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn all_zero_block() {
        let mut b = [0xffu8; BLOCK_BYTES];
        quantize(&[0.0; QK], &mut b);
        let mut want = zero_block();
        want[26..].fill(0);
        assert_eq!(b, want);
    }

    #[test]
    fn round_trip_of_ternary_values_is_exact() {
        // values already t·d with f16-exact d come back unchanged
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut x = vec![0f32; 5 * QK];
        for (i, v) in x.iter_mut().enumerate() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let d = [0.25f32, 1.5, 3.0, 0.125, 96.0][i / QK];
            *v = [-d, 0.0, d][(s % 3) as usize];
        }
        // the largest magnitude must be present for d to come out as given
        for k in 0..5 {
            x[k * QK + 7] = [0.25f32, 1.5, 3.0, 0.125, 96.0][k];
        }
        let mut b = vec![0u8; 5 * BLOCK_BYTES];
        quantize(&x, &mut b);
        let mut y = vec![0f32; x.len()];
        dequantize(&b, &mut y);
        assert_eq!(x, y);
        // and quantizing the dequantized values gives the same bytes
        let mut b2 = vec![0u8; b.len()];
        quantize(&y, &mut b2);
        assert_eq!(b, b2);
    }

    #[test]
    fn every_byte_decodes_to_digits() {
        // bytes above 242 are never written but must decode to something
        // in -1..=1; bytes the packer writes round-trip
        for b in 0..=255u8 {
            for n in 0..5 {
                assert!((-1..=1).contains(&trit(b, n)));
            }
        }
        for v in 0..243u16 {
            let digits: Vec<u8> = (0..5).rev().map(|k| (v / 3u16.pow(k) % 3) as u8).collect();
            let b = pack(digits.iter().copied());
            for (n, &t) in digits.iter().enumerate() {
                assert_eq!(trit(b, n), t as i8 - 1);
            }
        }
    }

    #[test]
    fn vec_dot_by_hand() {
        // Q8_0R planes: quants j % 7, scales 1, 0.5, 2, 0.25, sums
        // consistent with the quants
        let q: Vec<u8> = (0..QK).map(|j| (j % 7) as u8).collect();
        let mut a = q.clone();
        for s in [1.0f32, 0.5, 2.0, 0.25] {
            a.extend_from_slice(&s.to_le_bytes());
        }
        for k in 0..4 {
            let s: i32 = q[32 * k..32 * k + 32].iter().map(|&v| i32::from(v)).sum();
            a.extend_from_slice(&s.to_le_bytes());
        }
        // +3·1 (w3) − 4·2 (w67) − 3·0.25 (w101) + 5·0.25 (w117)
        // + 1·0.25 (w127) = −4.25; times d = 0.5
        assert_eq!(vec_dot(&hand_block(), &a), -2.125);
    }
}

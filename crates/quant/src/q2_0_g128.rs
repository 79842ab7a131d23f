//! PrismML's ternary layout at group size 128: `Q2_0` g128 (GGUF type 42 in
//! PrismML's early files) and `PQ2_0` (type 142). Both names denote the same
//! bytes, so one module serves both.
//!
//! Layout of one block (PrismML llama.cpp fork, ggml-common.h
//! `block_q2_0_g128` / `block_pq2_0`, `QK2_0_G128 = QK_PQ2_0 = 128`),
//! 34 bytes:
//!
//! | bytes  | field     | meaning                                             |
//! |--------|-----------|-----------------------------------------------------|
//! | 0..2   | `d`       | f16 scale, little-endian                            |
//! | 2..34  | `qs[32]`  | four 2-bit codes per byte, lowest bits first        |
//!
//! The codec is upstream `Q2_0`'s (see [`crate::q2_0`]): weight `j` (0..128)
//! has code `c = (qs[j / 4] >> 2 * (j % 4)) & 3` and value `(c - 1) * d`.
//! The fork's `quantize_row_pq2_0_ref` is `quantize_row_q2_0_ref` with
//! `qk = 128` (`d` = largest absolute value of the 128 weights), and
//! `ggml_vec_dot_pq2_0_q8_0_generic` is the g64 generic dot with four Q8_0
//! blocks per weight block instead of two (activations here as `Q8_0R`).
//!
//! **Absmean quantizer** ([`quantize_row_g128_absmean`], what `shohin
//! quantize` writes for its `Q2_0_G128` and `PQ2_0` targets): BitNet b1.58's
//! rule (Ma et al. 2024, "The Era of 1-bit LLMs", absmean quantization)
//! applied per block of 128 instead of per tensor. With `s = mean |w|` over
//! the block's 128 weights, each weight gets the ternary value
//! `t = round(w / s)` clamped to `-1..=1` (half away from zero), stored as
//! code `t + 1` (0, 1, 2 = -s, 0, +s; code 3 is never written), and `d` is
//! `s` itself rounded to f16, so a weight decodes to `t * f16(s)`. Unlike
//! the max-abs reference above, small weights round to 0 (ternary sparsity)
//! and large ones saturate at `±s`. Edge cases: `s == 0` (an all-zero block)
//! stores `d = 0` and every code 1 (zero); a mean above the largest finite
//! f16 stores `d = 65504` (f16 `MAX`) so decoding never yields inf or NaN;
//! non-finite inputs do not enter the mean (they count as 0 in the sum, the
//! divisor stays 128): NaN is stored as 0 and `±inf` as `±d` (when `s > 0`).

use crate::q2_0::{block_bytes, dequantize_g, quantize_g, vec_dot_g};
use half::f16;

/// Weights per block (`QK2_0_G128`).
const QK: usize = 128;

/// Dequantize whole blocks (PrismML ggml-quants.c `dequantize_row_pq2_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    dequantize_g::<QK>(src, dst);
}

/// Quantize whole blocks (PrismML ggml-quants.c `quantize_row_pq2_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    quantize_g::<QK>(src, dst);
}

/// The absmean scale of one block: `mean |w|` over its weights, finite
/// weights only (non-finite ones count as 0), summed in f64.
fn absmean(x: &[f32]) -> f32 {
    // a fold from +0.0: `Sum` of no floats is -0.0
    let sum = x
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |a, v| a + f64::from(v.abs()));
    (sum / x.len() as f64) as f32
}

/// Quantize whole blocks of 128 weights with BitNet b1.58's absmean rule
/// (see the module doc): `d = f16(mean |w|)`, code `clamp(round(w / mean
/// |w|), -1, 1) + 1`. The code is decided with the f32 mean, before its
/// rounding to f16. Not ggml's reference (that is [`quantize`], max-abs).
pub fn quantize_row_g128_absmean(src: &[f32], dst: &mut [u8]) {
    let bb = block_bytes(QK);
    debug_assert_eq!(src.len() / QK * bb, dst.len());
    for (x, blk) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(bb)) {
        let s = absmean(x);
        let d = f16::from_f32(s.min(f16::MAX.to_f32()));
        blk[0..2].copy_from_slice(&d.to_bits().to_le_bytes());
        let qs = &mut blk[2..];
        qs.fill(0);
        for (j, &w) in x.iter().enumerate() {
            let t = if s > 0.0 && !w.is_nan() {
                // inf / s is ±inf and clamps to ±1; a finite quotient that
                // overflows (s subnormal) does too
                (w / s).round().clamp(-1.0, 1.0)
            } else {
                0.0
            };
            let q = (t as i32 + 1) as u8;
            qs[j / 4] |= q << (2 * (j % 4));
        }
    }
}

/// Dot product with `Q8_0R` activations
/// (PrismML ggml-cpu/quants.c `ggml_vec_dot_pq2_0_q8_0_generic`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    vec_dot_g::<QK>(w, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_34_bytes_and_codes_span_32_bytes() {
        assert_eq!(block_bytes(QK), 34);
        let mut b = vec![0u8; 34];
        b[..2].copy_from_slice(&f16::from_f32(3.0).to_bits().to_le_bytes());
        b[2..].fill(0x55); // code 1: zero
        b[33] = 0b1000_0000; // weight 127 code 2, 124..126 code 0
        let mut y = [7f32; QK];
        dequantize(&b, &mut y);
        assert!(y[..124].iter().all(|&v| v == 0.0));
        assert_eq!(&y[124..], &[-3.0, -3.0, -3.0, 3.0]);
    }

    #[test]
    fn one_scale_covers_128_weights() {
        // the amax sits in the second half: with g64 the first half would
        // get its own, smaller scale
        let mut x = [0.5f32; QK];
        x[100] = -2.0;
        let mut b = [0u8; 34];
        quantize(&x, &mut b);
        assert_eq!(
            u16::from_le_bytes([b[0], b[1]]),
            f16::from_f32(2.0).to_bits()
        );
        // 0.5 / 2 = 0.25 rounds to 0 (code 1); -2 / 2 = -1 (code 0)
        let mut y = [0f32; QK];
        dequantize(&b, &mut y);
        for (j, v) in y.iter().enumerate() {
            assert_eq!(*v, if j == 100 { -2.0 } else { 0.0 });
        }
    }

    #[test]
    fn vec_dot_uses_four_q8_blocks() {
        let mut w = vec![0u8; 34];
        w[..2].copy_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
        w[2..].fill(0xaa); // all +1
                           // Q8_0R planes: quants k + 1 in block k, scales 1.0, sums
        let mut a: Vec<u8> = (0..4u8).flat_map(|k| [k + 1; 32]).collect();
        for _ in 0..4 {
            a.extend_from_slice(&1.0f32.to_le_bytes());
        }
        for k in 0..4 {
            a.extend_from_slice(&(32 * (k + 1i32)).to_le_bytes());
        }
        assert_eq!(vec_dot(&w, &a), 32.0 * (1.0 + 2.0 + 3.0 + 4.0));
    }

    fn d_of(b: &[u8]) -> f32 {
        f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
    }

    fn absmean_blocks(x: &[f32]) -> Vec<u8> {
        let mut b = vec![0u8; x.len() / QK * 34];
        quantize_row_g128_absmean(x, &mut b);
        b
    }

    /// A small xorshift generator: no dependency, same numbers everywhere.
    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // uniform in [-1, 1) times a per-value magnitude spread
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                let m = [0.01f32, 0.1, 1.0, 3.0][(s & 3) as usize];
                u * m
            })
            .collect()
    }

    #[test]
    fn absmean_round_trip_matches_a_scalar_rederivation() {
        let x = random(128 * 40, 0x9e37_79b9_7f4a_7c15);
        let b = absmean_blocks(&x);
        let mut y = vec![f32::NAN; x.len()];
        dequantize(&b, &mut y);
        let (mut zeros, mut nonzero) = (0, 0);
        for (k, (xs, ys)) in x.chunks(128).zip(y.chunks(128)).enumerate() {
            // independent re-derivation: mean |w| in f64, ternary value by
            // comparing |w| / mean with 1/2 (round half away from zero)
            let mean = xs.iter().map(|v| f64::from(v.abs())).sum::<f64>() / 128.0;
            let mean32 = mean as f32;
            let d = f16::from_f32(mean32).to_f32();
            assert_eq!(d_of(&b[34 * k..]), d, "block {k}");
            for (j, (&w, &v)) in xs.iter().zip(ys).enumerate() {
                let r = w / mean32;
                let t = if r >= 0.5 {
                    1.0
                } else if r <= -0.5 {
                    -1.0
                } else {
                    0.0
                };
                assert_eq!(v, t * d, "block {k} weight {j}: w {w} mean {mean32}");
                if t == 0.0 {
                    zeros += 1;
                } else {
                    nonzero += 1;
                }
            }
        }
        // the data spans magnitudes, so both kinds occur
        assert!(zeros > 500 && nonzero > 500, "{zeros} {nonzero}");
        // never code 3
        for blk in b.chunks(34) {
            for &q in &blk[2..] {
                for i in 0..4 {
                    assert_ne!((q >> (2 * i)) & 3, 3);
                }
            }
        }
    }

    #[test]
    fn absmean_by_hand() {
        // mean |w| = 8 / 128 = 1/16, all exact in f32
        let mut x = [0f32; QK];
        x[0] = 4.0; // 64: saturates at +1, code 2
        x[1] = -2.0; // -32: -1, code 0
        x[2] = 1.0 / 32.0; // exactly 0.5: away from zero, +1
        x[3] = -1.0 / 32.0; // -0.5: -1
        x[4] = 31.0 / 1024.0; // 0.484: 0, code 1
        x[5] = 1953.0 / 1024.0; // the rest of the sum: +1
        let b = absmean_blocks(&x);
        assert_eq!(d_of(&b), 1.0 / 16.0);
        assert_eq!(b[2], 0b00_10_00_10);
        assert_eq!(b[3] & 0x0f, 0b10_01);
        assert!(b[4..].iter().all(|&v| v == 0x55));
    }

    #[test]
    fn absmean_all_zero_block() {
        let b = absmean_blocks(&[0.0; QK]);
        assert_eq!(&b[..2], &[0, 0]);
        assert!(b[2..].iter().all(|&v| v == 0x55));
        let mut y = [1f32; QK];
        dequantize(&b, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
        // -0.0 too
        let b = absmean_blocks(&[-0.0; QK]);
        assert!(b[2..].iter().all(|&v| v == 0x55));
    }

    #[test]
    fn absmean_non_finite_inputs() {
        let mut x = [0.5f32; QK];
        x[0] = f32::NAN;
        x[1] = f32::INFINITY;
        x[2] = f32::NEG_INFINITY;
        x[3] = -0.5;
        let b = absmean_blocks(&x);
        // the mean leaves the three out of the sum but keeps 128 as divisor
        let s = 0.5f32 * 125.0 / 128.0;
        assert_eq!(d_of(&b), f16::from_f32(s).to_f32());
        let mut y = [0f32; QK];
        dequantize(&b, &mut y);
        let d = d_of(&b);
        assert_eq!(&y[..4], &[0.0, d, -d, -d]);
        assert!(y[4..].iter().all(|&v| v == d));
        // a block of nothing but NaN and inf: scale 0, all zero
        let mut x = [f32::NAN; QK];
        x[7] = f32::INFINITY;
        let b = absmean_blocks(&x);
        assert_eq!(&b[..2], &[0, 0]);
        assert!(b[2..].iter().all(|&v| v == 0x55));
    }

    #[test]
    fn absmean_extreme_scales_stay_finite() {
        // a mean above f16's range saturates at 65504
        let b = absmean_blocks(&[1.0e6; QK]);
        assert_eq!(d_of(&b), 65504.0);
        let mut y = [0f32; QK];
        dequantize(&b, &mut y);
        assert!(y.iter().all(|&v| v == 65504.0));
        // a subnormal f32 mean: codes still signed, the f16 scale is 0
        let mut x = [0f32; QK];
        x[0] = f32::from_bits(1) * 128.0; // 2^-142: / mean rounds to 0
        x[1] = -f32::MIN_POSITIVE; // mean = 2^-133, subnormal: -1
        let b = absmean_blocks(&x);
        assert_eq!(&b[..2], &[0, 0]);
        assert_eq!(b[2] & 0x0f, 0b00_01);
        dequantize(&b, &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }
}

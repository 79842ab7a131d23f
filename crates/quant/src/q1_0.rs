//! `Q1_0` (GGUF type 41): 1-bit weights, one f16 scale per 128 of them.
//!
//! Layout of one block (ggml-common.h `block_q1_0`, `QK1_0 = 128`), 18 bytes:
//!
//! | bytes  | field       | meaning                                           |
//! |--------|-------------|---------------------------------------------------|
//! | 0..2   | `d`         | f16 scale, little-endian                          |
//! | 2..18  | `qs[16]`    | one sign bit per weight, LSB first                |
//!
//! Weight `j` (0..128) is bit `j % 8` of `qs[j / 8]`: bit 1 means `+d`,
//! bit 0 means `-d` (ggml-quants.c `dequantize_row_q1_0`).
//!
//! The reference quantizer (`quantize_row_q1_0_ref`) keeps only the sign of
//! each weight (`x >= 0` gives bit 1, so `-0.0` and `+0.0` both give `+d`)
//! and sets `d` to the mean absolute value of the block, accumulated in f32
//! from left to right.
//!
//! The dot product (ggml-cpu/quants.c `ggml_vec_dot_q1_0_q8_0_generic`)
//! pairs one block with four `Q8_0` activation blocks of 32 values each
//! (here read from the planes of a [`crate::q8_0r`] row, the same numbers):
//! per activation block the signed i8 sum is taken in integers, scaled by
//! the activation scale into an f32 block sum, and that sum times `d` is
//! added to the row total.

use crate::q8_0r;
use half::f16;

/// Weights per block (`QK1_0`).
pub(crate) const QK: usize = 128;
/// Bytes per block: f16 scale + 128 sign bits.
pub(crate) const BLOCK_BYTES: usize = 2 + QK / 8;

/// Activation blocks of 32 per `Q1_0` block.
const Q8_PER_BLOCK: usize = QK / 32;

fn f16_at(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// Dequantize whole blocks (ggml-quants.c `dequantize_row_q1_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BLOCK_BYTES * QK, dst.len());
    for (blk, out) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = f16_at(blk);
        let qs = &blk[2..];
        for (j, y) in out.iter_mut().enumerate() {
            let bit = (qs[j / 8] >> (j % 8)) & 1;
            *y = if bit != 0 { d } else { -d };
        }
    }
}

/// Quantize whole blocks (ggml-quants.c `quantize_row_q1_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK * BLOCK_BYTES, dst.len());
    for (x, blk) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK_BYTES)) {
        // Left-to-right f32 sum, as the C loop does: the order matters for
        // the last bit of `d`.
        let mut sum_abs = 0.0f32;
        for v in x {
            sum_abs += v.abs();
        }
        let d = sum_abs / QK as f32;
        blk[0..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        let qs = &mut blk[2..];
        qs.fill(0);
        for (j, v) in x.iter().enumerate() {
            if *v >= 0.0 {
                qs[j / 8] |= 1 << (j % 8);
            }
        }
    }
}

/// Dot product of `Q1_0` weights with `Q8_0R` activations
/// (ggml-cpu/quants.c `ggml_vec_dot_q1_0_q8_0_generic`, same f32 order).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    debug_assert_eq!(w.len() / BLOCK_BYTES * QK, a.len() / q8_0r::BLOCK * 32);
    let (qa, da, _) = q8_0r::planes(a);
    let mut sumf = 0.0f32;
    for (i, (blk, act)) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(qa.chunks_exact(QK))
        .enumerate()
    {
        let d0 = f16_at(blk);
        let mut sumi = 0.0f32;
        for (k, yb) in act.chunks_exact(32).enumerate() {
            let d1 = q8_0r::scale(da, Q8_PER_BLOCK * i + k);
            let bits = &blk[2 + 4 * k..2 + 4 * k + 4];
            let mut sumi_block = 0i32;
            for (j, &q) in yb.iter().enumerate() {
                let q = i32::from(q as i8);
                sumi_block += if (bits[j / 8] >> (j % 8)) & 1 != 0 {
                    q
                } else {
                    -q
                };
            }
            sumi += d1 * sumi_block as f32;
        }
        sumf += d0 * sumi;
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(d: f32, qs: [u8; 16]) -> Vec<u8> {
        let mut b = f16::from_f32(d).to_bits().to_le_bytes().to_vec();
        b.extend_from_slice(&qs);
        b
    }

    #[test]
    fn bit_order_is_lsb_first() {
        let mut qs = [0u8; 16];
        qs[0] = 0b0000_0001;
        qs[15] = 0b1000_0000;
        let mut y = [0f32; QK];
        dequantize(&block(1.0, qs), &mut y);
        assert_eq!(y[0], 1.0);
        assert!(y[1..8].iter().all(|&v| v == -1.0));
        assert!(y[8..127].iter().all(|&v| v == -1.0));
        assert_eq!(y[127], 1.0);
    }

    #[test]
    fn scale_is_read_as_little_endian_f16() {
        // 0x3c00 = 1.0, 0x4000 = 2.0, 0xc000 = -2.0 (negative d flips signs)
        let mut b = vec![0x00, 0xc0];
        b.extend_from_slice(&[0xff; 16]);
        let mut y = [0f32; QK];
        dequantize(&b, &mut y);
        assert!(y.iter().all(|&v| v == -2.0));
    }

    #[test]
    fn quantize_keeps_signs_and_mean_abs() {
        let x: Vec<f32> = (0..QK).map(|j| [-0.5, 1.5, 1.5][j % 3]).collect();
        let mut b = [0u8; BLOCK_BYTES];
        quantize(&x, &mut b);
        let mean = x.iter().map(|v| f64::from(v.abs())).sum::<f64>() / QK as f64;
        assert_eq!(f16_at(&b), f16::from_f64(mean).to_f32());
        // weights 0, 3, 6 negative: byte 0 = bits 1,2,4,5,7 set
        assert_eq!(b[2], 0b1011_0110);
        let mut y = [0f32; QK];
        dequantize(&b, &mut y);
        for (xv, yv) in x.iter().zip(&y) {
            assert_eq!(xv.is_sign_negative(), yv.is_sign_negative());
        }
    }

    #[test]
    fn zero_and_negative_zero_quantize_to_plus() {
        let mut x = vec![0.0f32; QK];
        x[1] = -0.0;
        x[2] = -1.0;
        let mut b = [0u8; BLOCK_BYTES];
        quantize(&x, &mut b);
        assert_eq!(b[2], 0b1111_1011);
    }

    #[test]
    fn vec_dot_one_block_by_hand() {
        // weights: +1 for even j, -1 for odd j, d = 0.5
        let w = block(0.5, [0b0101_0101; 16]);
        // activations: q = 3, 1, 3, 1, .., scale 2.0 in each of the 4
        // blocks (Q8_0R planes: quants, f32 scales, sums)
        let mut a: Vec<u8> = (0..QK).map(|j| [3u8, 1][j % 2]).collect();
        for _ in 0..4 {
            a.extend_from_slice(&2.0f32.to_le_bytes());
        }
        for _ in 0..4 {
            a.extend_from_slice(&64i32.to_le_bytes());
        }
        // per q8 block: 16*3 - 16*1 = 32; *2 = 64; 4 blocks = 256; *0.5 = 128
        assert_eq!(vec_dot(&w, &a), 128.0);
    }
}

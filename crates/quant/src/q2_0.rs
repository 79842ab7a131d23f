//! `Q2_0` (GGUF type 42, upstream layout): 2-bit ternary codes, one f16
//! scale per 64 weights.
//!
//! Layout of one block (ggml-common.h `block_q2_0`, `QK2_0 = 64`), 18 bytes:
//!
//! | bytes  | field     | meaning                                             |
//! |--------|-----------|-----------------------------------------------------|
//! | 0..2   | `d`       | f16 scale, little-endian                            |
//! | 2..18  | `qs[16]`  | four 2-bit codes per byte, lowest bits first        |
//!
//! Weight `j` (0..64) has code `c = (qs[j / 4] >> 2 * (j % 4)) & 3` and
//! value `(c - 1) * d`: codes 0, 1, 2, 3 mean -d, 0, +d, +2d
//! (ggml-quants.c `dequantize_row_q2_0`). The reference quantizer never
//! writes code 3 but readers must accept it.
//!
//! The reference quantizer (`quantize_row_q2_0_ref`) sets `d` to the largest
//! absolute value in the block and each code to `round(x / d) + 1` clamped to
//! 0..=3, rounding half away from zero (C `roundf`).
//!
//! The dot product (ggml-cpu/quants.c `ggml_vec_dot_q2_0_q8_0_generic`)
//! pairs one block with two `Q8_0` activation blocks (here read from the
//! planes of a [`crate::q8_0r`] row, the same numbers): per activation block
//! an integer sum, scaled by the activation scale into an f32 block sum;
//! that sum times `d` goes into the row total.
//!
//! The codec here is generic over the group size so that PrismML's g128
//! layout ([`crate::q2_0_g128`]) reuses it unchanged.

use crate::q8_0r;
use half::f16;

/// Weights per block (`QK2_0`).
pub(crate) const QK: usize = 64;

fn f16_at(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// Bytes per block of `G` weights: f16 scale + `G / 4` code bytes.
pub(crate) const fn block_bytes(g: usize) -> usize {
    2 + g / 4
}

/// Dequantize whole blocks of `G` weights.
pub(crate) fn dequantize_g<const G: usize>(src: &[u8], dst: &mut [f32]) {
    let bb = block_bytes(G);
    debug_assert_eq!(src.len() / bb * G, dst.len());
    for (blk, out) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(G)) {
        let d = f16_at(blk);
        let qs = &blk[2..];
        for (j, y) in out.iter_mut().enumerate() {
            let c = (qs[j / 4] >> (2 * (j % 4))) & 3;
            // (int)q - 1, converted to float, times d: exact in f32
            *y = (i32::from(c) - 1) as f32 * d;
        }
    }
}

/// Quantize whole blocks of `G` weights with the `quantize_row_q2_0_ref`
/// rule.
pub(crate) fn quantize_g<const G: usize>(src: &[f32], dst: &mut [u8]) {
    let bb = block_bytes(G);
    debug_assert_eq!(src.len() / G * bb, dst.len());
    for (x, blk) in src.chunks_exact(G).zip(dst.chunks_exact_mut(bb)) {
        // `if (a > amax) amax = a;` skips NaN
        let mut amax = 0.0f32;
        for v in x {
            let a = v.abs();
            if a > amax {
                amax = a;
            }
        }
        let d = amax;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        blk[0..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        let qs = &mut blk[2..];
        qs.fill(0);
        for (j, &w) in x.iter().enumerate() {
            // round half away from zero like roundf, then clamp to the code
            // range; clamping before the cast keeps non-finite products
            // (d subnormal, 1/d infinite) defined where C would be undefined.
            let r = (w * id).round().clamp(-1.0, 2.0);
            let q = (r as i32 + 1) as u8;
            qs[j / 4] |= q << (2 * (j % 4));
        }
    }
}

/// Dot product of blocks of `G` weights with `Q8_0R` activations, `G / 32`
/// activation blocks per weight block, in the f32 order of
/// `ggml_vec_dot_q2_0_q8_0_generic`.
pub(crate) fn vec_dot_g<const G: usize>(w: &[u8], a: &[u8]) -> f32 {
    let bb = block_bytes(G);
    let per = G / 32;
    debug_assert_eq!(w.len() / bb * G, a.len() / q8_0r::BLOCK * 32);
    let (qa, da, _) = q8_0r::planes(a);
    let mut sumf = 0.0f32;
    for (i, (blk, act)) in w.chunks_exact(bb).zip(qa.chunks_exact(G)).enumerate() {
        let d0 = f16_at(blk);
        let mut sumi = 0.0f32;
        for (k, yb) in act.chunks_exact(32).enumerate() {
            let d1 = q8_0r::scale(da, per * i + k);
            let qs = &blk[2 + 8 * k..2 + 8 * k + 8];
            let mut sumi_block = 0i32;
            for (j, &q) in yb.iter().enumerate() {
                let c = i32::from((qs[j / 4] >> (2 * (j % 4))) & 3) - 1;
                sumi_block += c * i32::from(q as i8);
            }
            sumi += d1 * sumi_block as f32;
        }
        sumf += d0 * sumi;
    }
    sumf
}

/// Dequantize whole blocks (ggml-quants.c `dequantize_row_q2_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    dequantize_g::<QK>(src, dst);
}

/// Quantize whole blocks (ggml-quants.c `quantize_row_q2_0_ref`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    quantize_g::<QK>(src, dst);
}

/// Dot product with `Q8_0R` activations
/// (ggml-cpu/quants.c `ggml_vec_dot_q2_0_q8_0_generic`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    vec_dot_g::<QK>(w, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BB: usize = block_bytes(QK);

    fn block(d: f32, qs: [u8; 16]) -> Vec<u8> {
        let mut b = f16::from_f32(d).to_bits().to_le_bytes().to_vec();
        b.extend_from_slice(&qs);
        b
    }

    #[test]
    fn codes_map_to_minus_zero_plus_two() {
        // byte 0b11_10_01_00: codes 0,1,2,3 for weights 0..4
        let mut qs = [0x55u8; 16]; // all code 1 (zero)
        qs[0] = 0b1110_0100;
        let mut y = [9f32; QK];
        dequantize(&block(0.25, qs), &mut y);
        assert_eq!(&y[..4], &[-0.25, 0.0, 0.25, 0.5]);
        assert!(y[4..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn quantize_by_hand() {
        let mut x = [0f32; QK];
        x[0] = -2.0; // -0.5 ties away from zero: code 0
        x[1] = 2.0; // 0.5 ties away from zero: code 2
        x[2] = 1.98; // 0.495: code 1
        x[3] = 4.0; // amax: code 2
        x[4] = -1.0; // -0.25: code 1
        x[5] = -3.0; // -0.75: code 0
        let mut b = [0u8; BB];
        quantize(&x, &mut b);
        assert_eq!(f16_at(&b), 4.0);
        assert_eq!(b[2], 0b10_01_10_00);
        assert_eq!(b[3] & 0x0f, 0b00_01);
        // the rest are zeros: code 1
        assert_eq!(b[3] >> 4, 0b01_01);
        assert!(b[4..].iter().all(|&v| v == 0x55));
    }

    #[test]
    fn all_zero_block_has_zero_scale_and_zero_codes() {
        let mut b = [0xffu8; BB];
        quantize(&[0.0; QK], &mut b);
        assert_eq!(&b[..2], &[0, 0]);
        assert!(b[2..].iter().all(|&v| v == 0x55));
    }

    #[test]
    fn vec_dot_by_hand() {
        // codes 2 (+1) everywhere except code 0 (-1) in the second half
        let mut qs = [0xaau8; 16];
        qs[8..].fill(0x00);
        let w = block(2.0, qs);
        // Q8_0R planes: 64 quants 4, scales 1.0 and 0.5, sums 128
        let mut a = vec![4u8; 64];
        for s in [1.0f32, 0.5] {
            a.extend_from_slice(&s.to_le_bytes());
        }
        for _ in 0..2 {
            a.extend_from_slice(&128i32.to_le_bytes());
        }
        // first q8 block: +1*4*32 = 128 *1.0; second: -128 * 0.5 = -64
        assert_eq!(vec_dot(&w, &a), 2.0 * (128.0 - 64.0));
    }
}

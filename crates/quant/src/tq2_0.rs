//! `TQ2_0` (GGUF type 35): ternary weights as 2-bit codes, one f16 scale per
//! 256 of them (2.0625 bits per weight).
//!
//! Layout of one block (ggml-common.h `block_tq2_0`, `QK_K = 256`), 66 bytes:
//!
//! | bytes  | field     | holds                                            |
//! |--------|-----------|--------------------------------------------------|
//! | 0..64  | `qs[64]`  | four 2-bit codes per byte                        |
//! | 64..66 | `d`       | f16 scale, little-endian                         |
//!
//! Unlike `Q2_0`, the four codes of a byte are 32 weights apart: for the two
//! halves `h` (bytes `32h..32h+32`), bits `2l..2l+2` of byte `32h + m` are
//! the code of weight `128h + 32l + m` (ggml-quants.c `dequantize_row_tq2_0`).
//! Code `c` means `(c - 1) * d`: 0, 1, 2 are -d, 0, +d (3 would be +2d; the
//! quantizer never writes it).
//!
//! The quantizer (`quantize_row_tq2_0_ref`) sets `d` to the block's largest
//! absolute value and each code to `lroundf(x / d) + 1`. The dot product
//! (ggml-cpu/quants.c `ggml_vec_dot_tq2_0_q8_K_generic`) sums code-1 times
//! `block_q8_K` quant in integers over the block and adds
//! `sum * (d_q8 * d)` to the f32 row total.

use half::f16;

/// Weights per block (`QK_K`).
const QK: usize = 256;
/// Bytes of `qs`.
const QS_BYTES: usize = QK / 4;
/// Bytes per block.
const BLOCK_BYTES: usize = QS_BYTES + 2;

/// Bytes of one `block_q8_K`: f32 scale, 256 i8, 16 i16 sums.
const Q8_K_BYTES: usize = 4 + QK + 2 * (QK / 16);

fn scale(blk: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([blk[QS_BYTES], blk[QS_BYTES + 1]])).to_f32()
}

/// The code of weight `i` (0..256) of a block, minus one.
fn weight(qs: &[u8], i: usize) -> i32 {
    let (h, l, m) = (i / 128, (i % 128) / 32, i % 32);
    i32::from((qs[32 * h + m] >> (2 * l)) & 3) - 1
}

/// Dequantize whole blocks (ggml-quants.c `dequantize_row_tq2_0`).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BLOCK_BYTES * QK, dst.len());
    for (blk, out) in src.chunks_exact(BLOCK_BYTES).zip(dst.chunks_exact_mut(QK)) {
        let d = scale(blk);
        for (i, y) in out.iter_mut().enumerate() {
            *y = weight(blk, i) as f32 * d;
        }
    }
}

/// Quantize whole blocks (ggml-quants.c `quantize_row_tq2_0_ref`).
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
        for h in 0..QS_BYTES / 32 {
            for m in 0..32 {
                let mut q = 0u8;
                for l in 0..4 {
                    // lroundf(x * id) + 1; the clamp only matters for
                    // non-finite products, where C is undefined
                    let r = (x[128 * h + 32 * l + m] * id).round().clamp(-1.0, 1.0);
                    q |= ((r as i32 + 1) as u8) << (2 * l);
                }
                blk[32 * h + m] = q;
            }
        }
        blk[QS_BYTES..].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
    }
}

/// Dot product with Q8_K activations
/// (ggml-cpu/quants.c `ggml_vec_dot_tq2_0_q8_K_generic`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    debug_assert_eq!(w.len() / BLOCK_BYTES * Q8_K_BYTES, a.len());
    let mut sumf = 0.0f32;
    for (blk, act) in w.chunks_exact(BLOCK_BYTES).zip(a.chunks_exact(Q8_K_BYTES)) {
        let dy = f32::from_le_bytes([act[0], act[1], act[2], act[3]]);
        let sumi: i32 = act[4..4 + QK]
            .iter()
            .enumerate()
            .map(|(i, &q)| weight(blk, i) * i32::from(q as i8))
            .sum();
        sumf += sumi as f32 * (dy * scale(blk));
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_ggml_common_h() {
        assert_eq!(BLOCK_BYTES, 66);
    }

    #[test]
    fn codes_are_32_weights_apart() {
        let mut b = [0x55u8; BLOCK_BYTES]; // all code 1: zero
        b[QS_BYTES..].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        // byte 33 = half 1, m = 1: codes for weights 129, 161, 193, 225
        b[33] = 0b11_10_01_00;
        let mut y = [9f32; QK];
        dequantize(&b, &mut y);
        for (i, v) in y.iter().enumerate() {
            let want = match i {
                129 => -0.5,
                193 => 0.5,
                225 => 1.0,
                _ => 0.0,
            };
            assert_eq!(*v, want, "weight {i}");
        }
    }

    #[test]
    fn quantize_by_hand() {
        let mut x = [0f32; QK];
        x[0] = 4.0; // byte 0, bits 0..2: code 2
        x[32] = -2.0; // byte 0, bits 2..4: -0.5 away from zero, code 0
        x[64] = 1.98; // byte 0, bits 4..6: 0.495, code 1
        x[255] = -4.0; // byte 63, bits 6..8: code 0
        let mut b = [0u8; BLOCK_BYTES];
        quantize(&x, &mut b);
        assert_eq!(scale(&b), 4.0);
        assert_eq!(b[0], 0b01_01_00_10);
        assert_eq!(b[63], 0b00_01_01_01);
        assert!(b[1..63].iter().all(|&v| v == 0x55));
    }

    #[test]
    fn vec_dot_by_hand() {
        let mut b = [0x55u8; BLOCK_BYTES];
        b[QS_BYTES..].copy_from_slice(&f16::from_f32(3.0).to_bits().to_le_bytes());
        b[0] = 0b10_01_01_00; // weight 0: -1, weight 96: +1
        let mut a = vec![0u8; Q8_K_BYTES];
        a[..4].copy_from_slice(&0.25f32.to_le_bytes());
        a[4] = 10; // q[0]
        a[4 + 96] = (-6i8) as u8;
        a[4 + 5] = 100; // weight 5 is zero
                        // (-10 - 6) * (0.25 * 3)
        assert_eq!(vec_dot(&b, &a), -12.0);
    }
}

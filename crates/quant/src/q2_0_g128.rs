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

use crate::q2_0::{dequantize_g, quantize_g, vec_dot_g};

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

/// Dot product with `Q8_0R` activations
/// (PrismML ggml-cpu/quants.c `ggml_vec_dot_pq2_0_q8_0_generic`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    vec_dot_g::<QK>(w, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::q2_0::block_bytes;
    use half::f16;

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
}

//! `Q8_1` (ggml type 9): 32 signed bytes, an `f16` scale and an `f16`
//! block sum per block. It is the activation format of the `Q4_1` and
//! `Q5_1` dot products (ggml-cpu `vec_dot_type`), so [`quantize`] must equal ggml's
//! bit for bit; shohin never stores weights in it.
//!
//! Layout (ggml-common.h `block_q8_1`, `QK8_1 = 32`, 36 bytes):
//!
//! | bytes | field                                         |
//! |-------|-----------------------------------------------|
//! | 0..2  | `d`: `ggml_half` scale                        |
//! | 2..4  | `s`: `ggml_half`, `d · Σ qs` (`d` before its  |
//! |       | rounding to `f16`)                            |
//! | 4..36 | `qs[32]`: `int8_t` quants                     |
//!
//! Value `j` is `qs[j] * d`; `s` only serves the dot products.

use crate::fp16::{f16_bits, read_f16};
use crate::q8_0::{dequantize_block, dot_block, quantize_block};

/// Values per block (`QK8_1`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q8_1)`).
const BLOCK: usize = 2 + 2 + QK;

/// ggml-quants.c `dequantize_row_q8_1` does not exist; this is the plain
/// `qs[j] * d` that the layout defines (as `Q8_0`'s).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        dequantize_block(read_f16(b), &b[4..], y);
    }
}

/// ggml-quants.c `quantize_row_q8_1_ref`: as `Q8_0` (`d = amax / 127`,
/// `roundf(x·(1/d))`), plus `s = f16(Σq · d)` from the `f32` `d`.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let d = quantize_block(x, &mut b[4..]);
        let sum: i32 = b[4..].iter().map(|&q| i32::from(q as i8)).sum();
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        b[2..4].copy_from_slice(&f16_bits(sum as f32 * d).to_le_bytes());
    }
}

/// `Q8_1 · Q8_1` (ggml-cpu has no such kernel; the kernel table needs one):
/// per block the exact integer `Σ qw·qa`, scaled by `d_w·d_a` and summed in
/// `f32`, as `Q8_0`'s.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK)) {
        sum += dot_block(&bw[4..], &ba[4..]) as f32 * (read_f16(bw) * read_f16(ba));
    }
    sum
}

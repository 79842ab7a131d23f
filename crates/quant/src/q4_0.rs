//! `Q4_0` (ggml type 2): 32 4-bit quants and one `f16` scale per block,
//! symmetric around 8.
//!
//! Layout (ggml-common.h `block_q4_0`, `QK4_0 = 32`, 18 bytes):
//!
//! | bytes | field                                        |
//! |-------|----------------------------------------------|
//! | 0..2  | `d`: `ggml_half` scale                       |
//! | 2..18 | `qs[16]`: byte `j` holds value `j` in its low |
//! |       | nibble and value `j + 16` in its high nibble |
//!
//! Value `i` is `(q_i - 8) * d` with `q_i` in `0..=15`.

use crate::fp16::{f16_bits, read_f16};

/// Values per block (`QK4_0`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q4_0)`).
const BLOCK: usize = 2 + QK / 2;

/// The two signed quants (`q - 8`) packed in byte `byte`.
fn unpack(byte: u8) -> (i32, i32) {
    (i32::from(byte & 0x0F) - 8, i32::from(byte >> 4) - 8)
}

/// ggml-quants.c `dequantize_row_q4_0`.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let (lo, hi) = y.split_at_mut(QK / 2);
        for ((&byte, y0), y1) in b[2..].iter().zip(lo).zip(hi) {
            let (x0, x1) = unpack(byte);
            *y0 = x0 as f32 * d;
            *y1 = x1 as f32 * d;
        }
    }
}

/// ggml-quants.c `quantize_row_q4_0_ref`: `d = max / -8` where `max` is the
/// first value of largest magnitude (sign kept, so it maps to quant 0), and
/// `q = min(15, trunc(x/d + 8.5))`.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let max = signed_absmax(x);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        // `as i8` truncates toward zero like the C cast (the argument is
        // in [0, 16.5] for finite input).
        let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        for (j, byte) in b[2..].iter_mut().enumerate() {
            *byte = q(x[j]) | (q(x[j + QK / 2]) << 4);
        }
    }
}

/// ggml-cpu quants.c `ggml_vec_dot_q4_0_q8_0_generic`: per block the exact
/// integer `Σ (q-8)·qa`, times `d_w`, times `d_a`, summed in `f32`.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(2 + QK)) {
        let qa = &ba[2..];
        let mut sumi = 0i32;
        for (j, &byte) in bw[2..].iter().enumerate() {
            let (x0, x1) = unpack(byte);
            sumi += x0 * i32::from(qa[j] as i8) + x1 * i32::from(qa[j + QK / 2] as i8);
        }
        sum += sumi as f32 * read_f16(bw) * read_f16(ba);
    }
    sum
}

/// The first value of largest magnitude, sign kept (0 for an all-zero or
/// all-NaN block): the `max` of ggml's `quantize_row_q4_0_ref` and
/// `quantize_row_q5_0_ref`, which scale by it so that it maps to the
/// lowest quant.
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

//! `Q8_0` (ggml type 8): 32 signed bytes and one `f16` scale per block.
//! It is also the activation format of the dot products of every 32-weight
//! format (ggml-cpu `vec_dot_type`), so [`quantize`] must equal ggml's
//! bit for bit.
//!
//! Layout (ggml-common.h `block_q8_0`, `QK8_0 = 32`, 34 bytes):
//!
//! | bytes | field                     |
//! |-------|---------------------------|
//! | 0..2  | `d`: `ggml_half` scale    |
//! | 2..34 | `qs[32]`: `int8_t` quants |
//!
//! Value `j` is `qs[j] * d`.

use crate::fp16::{f16_bits, read_f16};

/// Values per block (`QK8_0`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q8_0)`).
const BLOCK: usize = 2 + QK;

/// ggml-quants.c `dequantize_row_q8_0`.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        dequantize_block(read_f16(b), &b[2..], y);
    }
}

/// One block's values `qs[j] · d` (shared with `Q8_1`, whose quants are
/// the same).
pub(crate) fn dequantize_block(d: f32, qs: &[u8], y: &mut [f32]) {
    for (y, &q) in y.iter_mut().zip(qs) {
        *y = f32::from(q as i8) * d;
    }
}

/// ggml-quants.c `quantize_row_q8_0_ref`: `d = amax / 127`, each value
/// multiplied by `1/d` (computed before `d` is rounded to `f16`) and
/// rounded half away from zero (`roundf`).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let d = quantize_block(x, &mut b[2..]);
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    }
}

/// One block's quants into `qs`; returns the `f32` scale `d` (not yet
/// rounded to `f16`). Shared with `Q8_1` (`quantize_row_q8_1_ref` computes
/// its quants the same way).
pub(crate) fn quantize_block(x: &[f32], qs: &mut [u8]) -> f32 {
    // `MAX(amax, fabsf(v))` as ggml writes it (a NaN poisons `amax`).
    let amax = x
        .iter()
        .fold(0f32, |m, v| if m > v.abs() { m } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(x) {
        // |v * id| <= 127 up to rounding; `as` saturates like the
        // float-to-int8 conversion does for in-range values.
        *q = (v * id).round() as i8 as u8;
    }
    d
}

/// ggml-cpu quants.c `ggml_vec_dot_q8_0_q8_0_generic`: per block the exact
/// integer `Σ qw·qa`, scaled by `d_w·d_a` and summed in `f32`.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK)) {
        sum += dot_block(&bw[2..], &ba[2..]) as f32 * (read_f16(bw) * read_f16(ba));
    }
    sum
}

/// The exact integer `Σ qw·qa` of two blocks of int8 quants (shared with
/// `Q8_1`).
pub(crate) fn dot_block(qw: &[u8], qa: &[u8]) -> i32 {
    qw.iter()
        .zip(qa)
        .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
        .sum()
}

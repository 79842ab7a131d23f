//! `Q8_1` (ggml type 9): 32 signed bytes, an `f16` scale and an `f16`
//! block sum per block. It is the activation format of the `Q5_1` dot
//! product (ggml-cpu `vec_dot_type`), so [`quantize`] must equal ggml's
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

/// Values per block (`QK8_1`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q8_1)`).
const BLOCK: usize = 2 + 2 + QK;

/// ggml-quants.c `dequantize_row_q8_1` does not exist; this is the plain
/// `qs[j] * d` that the layout defines (as `Q8_0`'s).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        for (y, &q) in y.iter_mut().zip(&b[4..]) {
            *y = f32::from(q as i8) * d;
        }
    }
}

/// ggml-quants.c `quantize_row_q8_1_ref`: as `Q8_0` (`d = amax / 127`,
/// `roundf(x·(1/d))`), plus `s = f16(Σq · d)` from the `f32` `d`.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        // `MAX(amax, fabsf(v))` as ggml writes it (a NaN poisons `amax`).
        let amax = x
            .iter()
            .fold(0f32, |m, v| if m > v.abs() { m } else { v.abs() });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        let mut sum = 0i32;
        for (q, &v) in b[4..].iter_mut().zip(x) {
            let qi = (v * id).round() as i8;
            *q = qi as u8;
            sum += i32::from(qi);
        }
        b[2..4].copy_from_slice(&f16_bits(sum as f32 * d).to_le_bytes());
    }
}

/// `Q8_1 · Q8_1` (ggml-cpu has no such kernel; the kernel table needs one):
/// per block the exact integer `Σ qw·qa`, scaled by `d_w·d_a` and summed in
/// `f32`, as `Q8_0`'s.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK)) {
        let sumi: i32 = bw[4..]
            .iter()
            .zip(&ba[4..])
            .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
            .sum();
        sum += sumi as f32 * (read_f16(bw) * read_f16(ba));
    }
    sum
}

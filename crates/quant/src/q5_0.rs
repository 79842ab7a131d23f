//! `Q5_0` (ggml type 6): 32 5-bit quants and one `f16` scale per block,
//! symmetric around 16.
//!
//! Layout (ggml-common.h `block_q5_0`, `QK5_0 = 32`, 22 bytes):
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..2   | `d`: `ggml_half` scale                             |
//! | 2..6   | `qh[4]`: little-endian `u32`, bit `i` = bit 4 of   |
//! |        | quant `i`                                          |
//! | 6..22  | `qs[16]`: byte `j` holds the low 4 bits of quant   |
//! |        | `j` (low nibble) and of quant `j + 16` (high one)  |
//!
//! Value `i` is `(q_i - 16) * d` with `q_i` in `0..=31`.

use crate::fp16::{f16_bits, read_f16};
use crate::q4_0::signed_absmax;

/// Values per block (`QK5_0`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q5_0)`).
const BLOCK: usize = 2 + 4 + QK / 2;

/// The signed quants (`q - 16`) `j` and `j + 16` of a block.
fn unpack(b: &[u8], qh: u32, j: usize) -> (i32, i32) {
    let byte = b[6 + j];
    let h0 = ((qh >> j) & 1) << 4;
    let h1 = ((qh >> (j + 16)) & 1) << 4;
    (
        (u32::from(byte & 0x0F) | h0) as i32 - 16,
        (u32::from(byte >> 4) | h1) as i32 - 16,
    )
}

fn high_bits(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[2], b[3], b[4], b[5]])
}

/// ggml-quants.c `dequantize_row_q5_0`.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let qh = high_bits(b);
        for j in 0..QK / 2 {
            let (x0, x1) = unpack(b, qh, j);
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

/// ggml-quants.c `quantize_row_q5_0_ref`: `d = max / -16` (`max` the first
/// value of largest magnitude, sign kept), `q = min(31, trunc(x/d + 16.5))`.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let max = signed_absmax(x);
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        // Truncation toward zero like the C `(int8_t)` cast.
        let q = |v: f32| ((v * id + 16.5) as i8).min(31) as u8;
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let (q0, q1) = (q(x[j]), q(x[j + QK / 2]));
            b[6 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
            qh |= u32::from((q0 & 0x10) >> 4) << j;
            qh |= u32::from((q1 & 0x10) >> 4) << (j + QK / 2);
        }
        b[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

/// ggml-cpu quants.c `ggml_vec_dot_q5_0_q8_0_generic`: per block the exact
/// integer `Σ (q-16)·qa`, times `d_w·d_a`, summed in `f32`.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(2 + QK)) {
        let qh = high_bits(bw);
        let qa = &ba[2..];
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let (x0, x1) = unpack(bw, qh, j);
            sumi += x0 * i32::from(qa[j] as i8) + x1 * i32::from(qa[j + QK / 2] as i8);
        }
        sum += (read_f16(bw) * read_f16(ba)) * sumi as f32;
    }
    sum
}

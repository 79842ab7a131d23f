//! `Q5_1` (ggml type 7): 32 5-bit quants, an `f16` scale and an `f16`
//! minimum per block (asymmetric: quant 0 is the block's minimum).
//!
//! Layout (ggml-common.h `block_q5_1`, `QK5_1 = 32`, 24 bytes):
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..2   | `d`: `ggml_half` scale                             |
//! | 2..4   | `m`: `ggml_half` minimum                           |
//! | 4..8   | `qh[4]`: little-endian `u32`, bit `i` = bit 4 of   |
//! |        | quant `i`                                          |
//! | 8..24  | `qs[16]`: byte `j` holds the low 4 bits of quant   |
//! |        | `j` (low nibble) and of quant `j + 16` (high one)  |
//!
//! Value `i` is `q_i * d + m` with `q_i` in `0..=31`. Its activations are
//! `Q8_1` (ggml-cpu `vec_dot_type`), whose block sums `s = d·Σq` carry the
//! `m` term of the dot product.

use crate::fp16::{f16_bits, read_f16};

/// Values per block (`QK5_1`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q5_1)`).
const BLOCK: usize = 2 + 2 + 4 + QK / 2;
/// Bytes per `Q8_1` activation block.
const A_BLOCK: usize = 2 + 2 + QK;

/// The unsigned quants `j` and `j + 16` of a block (0..=31).
fn unpack(b: &[u8], qh: u32, j: usize) -> (i32, i32) {
    let byte = b[8 + j];
    let h0 = ((qh >> j) & 1) << 4;
    let h1 = ((qh >> (j + 16)) & 1) << 4;
    (
        (u32::from(byte & 0x0F) | h0) as i32,
        (u32::from(byte >> 4) | h1) as i32,
    )
}

fn high_bits(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[4], b[5], b[6], b[7]])
}

/// ggml-quants.c `dequantize_row_q5_1`: `q·d + m` (two roundings, no FMA).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let m = read_f16(&b[2..]);
        let qh = high_bits(b);
        for j in 0..QK / 2 {
            let (x0, x1) = unpack(b, qh, j);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

/// The block header of `Q5_1` / `Q4_1` (ggml-quants.c
/// `quantize_row_q{5,4}_1_ref`): `d = (max - min) / levels` and `m = min`
/// written as f16 to `b[..4]`; returns `min` and `1/d` (from the `f32` `d`,
/// before its rounding). NaNs never win the min/max comparisons (which
/// start from `±FLT_MAX`), as in C.
pub(crate) fn min_and_scale(x: &[f32], levels: f32, b: &mut [u8]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / levels;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
    b[2..4].copy_from_slice(&f16_bits(min).to_le_bytes());
    (min, id)
}

/// ggml-quants.c `quantize_row_q5_1_ref`: `d = (max - min) / 31`, `m =
/// min`, `q = trunc((x - min)·(1/d) + 0.5)` with `1/d` taken from the `f32`
/// `d` before it is rounded to `f16`. NaNs never win the min/max
/// comparisons (which start from `±FLT_MAX`), as in C.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let (min, id) = min_and_scale(x, 31.0, b);
        // `as u8` truncates toward zero like the C `(uint8_t)` cast (the
        // argument is in [0, 31.5] for finite input; out of range C is
        // undefined, Rust saturates).
        let q = |v: f32| ((v - min) * id + 0.5) as u8;
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let (q0, q1) = (q(x[j]), q(x[j + QK / 2]));
            b[8 + j] = (q0 & 0x0F) | ((q1 & 0x0F) << 4);
            qh |= u32::from((q0 & 0x10) >> 4) << j;
            qh |= u32::from((q1 & 0x10) >> 4) << (j + QK / 2);
        }
        b[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// ggml-cpu quants.c `ggml_vec_dot_q5_1_q8_1_generic`: per block the exact
/// integer `Σ q·qa`, then `(d_w·d_a)·sumi + m_w·s_a` added to an `f32` sum.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(A_BLOCK)) {
        let qh = high_bits(bw);
        let qa = &ba[4..];
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (x0, x1) = unpack(bw, qh, j);
            sumi0 += x0 * i32::from(qa[j] as i8);
            sumi1 += x1 * i32::from(qa[j + QK / 2] as i8);
        }
        let sumi = sumi0 + sumi1;
        let (dw, mw) = (read_f16(bw), read_f16(&bw[2..]));
        let (da, sa) = (read_f16(ba), read_f16(&ba[2..]));
        sum += (dw * da) * sumi as f32 + mw * sa;
    }
    sum
}

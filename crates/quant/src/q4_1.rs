//! `Q4_1` (ggml type 3): 32 4-bit quants, an `f16` scale and an `f16`
//! minimum per block (asymmetric: quant 0 is the block's minimum). The
//! 4-bit sibling of [`crate::q5_1`], without the fifth-bit word.
//!
//! Layout (ggml-common.h `block_q4_1`, `QK4_1 = 32`, 20 bytes):
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..2   | `d`: `ggml_half` scale                             |
//! | 2..4   | `m`: `ggml_half` minimum                           |
//! | 4..20  | `qs[16]`: byte `j` holds quant `j` (low nibble)    |
//! |        | and quant `j + 16` (high nibble)                   |
//!
//! Value `i` is `q_i * d + m` with `q_i` in `0..=15`. Its activations are
//! `Q8_1` (ggml-cpu `vec_dot_type`), whose block sums `s = d·Σq` carry the
//! `m` term of the dot product.

use crate::fp16::read_f16;

/// Values per block (`QK4_1`).
const QK: usize = 32;
/// Bytes per block (`sizeof(block_q4_1)`).
const BLOCK: usize = 2 + 2 + QK / 2;
/// Bytes per `Q8_1` activation block.
const A_BLOCK: usize = 2 + 2 + QK;

/// The unsigned quants `j` and `j + 16` of a block (0..=15).
fn unpack(b: &[u8], j: usize) -> (i32, i32) {
    let byte = b[4 + j];
    (i32::from(byte & 0x0F), i32::from(byte >> 4))
}

/// ggml-quants.c `dequantize_row_q4_1`: `q·d + m` (two roundings, no FMA,
/// so that the result is ggml's bit for bit).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(b);
        let m = read_f16(&b[2..]);
        for j in 0..QK / 2 {
            let (x0, x1) = unpack(b, j);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

/// ggml-quants.c `quantize_row_q4_1_ref`: `d = (max - min) / 15`, `m =
/// min`, `q = min(15, (int8_t)((x - min)·(1/d) + 0.5))` with `1/d` taken
/// from the `f32` `d` before it is rounded to `f16`. NaNs never win the
/// min/max comparisons (which start from `±FLT_MAX`), as in C.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(BLOCK)) {
        let (min, id) = crate::q5_1::min_and_scale(x, 15.0, b);
        // Unlike Q5_1, ggml casts to `int8_t` and then caps at 15: `as i8`
        // truncates toward zero like that cast (the argument is in [0, 15.5]
        // for finite input, where both agree; out of range C is undefined,
        // Rust saturates). `x - min >= 0` for finite `x`, so the `as u8`
        // never sees a negative value there.
        let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
        for j in 0..QK / 2 {
            // `<< 4` drops the bits above the byte as C's store to `uint8_t`
            // does (only reachable for the negative quants of NaN input).
            b[4 + j] = q(x[j]) | (q(x[j + QK / 2]) << 4);
        }
    }
}

/// ggml-cpu quants.c `ggml_vec_dot_q4_1_q8_1_generic`: per block the exact
/// integer `Σ q·qa`, then `(d_w·d_a)·sumi + m_w·s_a` added to an `f32` sum
/// (the minimum's share `m·Σ(d_a·qa)` comes from the activation's block
/// sum, so the weights' nibbles are used unsigned).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(A_BLOCK)) {
        let qa = &ba[4..];
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (x0, x1) = unpack(bw, j);
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

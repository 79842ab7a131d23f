//! `Q8_K` (ggml type 15): the activation format of the K-quant dot products
//! (ggml-cpu `vec_dot_type` of `Q4_K`/`Q5_K`/`Q6_K`), never a weight format
//! in files. [`quantize`] must equal ggml's bit for bit, block sums included.
//!
//! Layout (ggml-common.h `block_q8_K`, `QK_K = 256`, 292 bytes):
//!
//! | bytes    | field                                                 |
//! |----------|-------------------------------------------------------|
//! | 0..4     | `d`: `float` scale, little-endian                     |
//! | 4..260   | `qs[256]`: `int8_t` quants                            |
//! | 260..292 | `bsums[16]`: `int16_t` little-endian, `bsums[g]` is    |
//! |          | `Σ qs[16g .. 16g+16]` (the K-quant dots use them to   |
//! |          | apply per-sub-block minimums without touching `qs`)   |
//!
//! Value `j` is `d * qs[j]`.

use crate::QK_K;

/// Bytes per block (`sizeof(block_q8_K)`).
pub(crate) const BLOCK: usize = 4 + QK_K + 2 * (QK_K / 16);
/// Offset of `bsums` in a block.
const BSUMS: usize = 4 + QK_K;

/// ggml-quants.c `nearest_int`: adds 1.5·2²³ so the FPU's round-to-nearest-
/// even leaves the integer in the low mantissa bits. Exact for
/// `|x| <= 4194303`; outside that ggml (built with `NDEBUG`) returns the
/// same garbage this does.
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// The scale `d` of a block.
pub(crate) fn scale(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Block sum `g` (`0..16`).
pub(crate) fn bsum(b: &[u8], g: usize) -> i32 {
    i32::from(i16::from_le_bytes([b[BSUMS + 2 * g], b[BSUMS + 2 * g + 1]]))
}

/// The quants of a block.
pub(crate) fn quants(b: &[u8]) -> &[u8] {
    &b[4..BSUMS]
}

/// ggml-quants.c `dequantize_row_q8_K`.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(BLOCK).zip(dst.chunks_exact_mut(QK_K)) {
        let d = scale(b);
        for (y, &q) in y.iter_mut().zip(quants(b)) {
            *y = d * f32::from(q as i8);
        }
    }
}

/// ggml-quants.c `quantize_row_q8_K_ref`: `iscale = -127 / max` (`max` the
/// first value of largest magnitude, sign kept), `q = min(127,
/// nearest_int(iscale·x))` (ties to even, unlike `Q8_0`'s `roundf`),
/// `d = 1 / iscale` kept as `f32`, and the 16 block sums. An all-zero block
/// gets `d = 0` and zero quants; ggml leaves its `bsums` unwritten, here
/// they are 0 (their true value).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(BLOCK)) {
        let mut max = 0f32;
        let mut amax = 0f32;
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b[4..BSUMS].iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8 as u8;
        }
        for g in 0..QK_K / 16 {
            let s: i16 = b[4 + 16 * g..4 + 16 * (g + 1)]
                .iter()
                .map(|&q| i16::from(q as i8))
                .sum();
            b[BSUMS + 2 * g..BSUMS + 2 * g + 2].copy_from_slice(&s.to_le_bytes());
        }
        b[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// `Q8_K · Q8_K` (ggml has no such kernel; used when `Q8_K` itself is the
/// weight type): per block the exact integer `Σ qw·qa` times `d_w·d_a`,
/// summed in `f32`.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f32;
    for (bw, ba) in w.chunks_exact(BLOCK).zip(a.chunks_exact(BLOCK)) {
        let sumi: i32 = quants(bw)
            .iter()
            .zip(quants(ba))
            .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
            .sum();
        sum += (scale(bw) * scale(ba)) * sumi as f32;
    }
    sum
}

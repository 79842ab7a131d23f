//! `BF16` (ggml type 30): bfloat16, the upper half of a binary32.
//!
//! Layout (ggml.h `ggml_bf16_t { uint16_t bits; }`, block size 1, type
//! size 2), little-endian:
//!
//! | bytes | field                                   |
//! |-------|-----------------------------------------|
//! | 0..2  | bits 31..16 of the `f32`, little-endian |
//!
//! Conversions are ggml-impl.h `ggml_compute_bf16_to_fp32` (shift left by
//! 16, exact) and `ggml_compute_fp32_to_bf16`: NaN → `(bits >> 16) | 64`
//! (forced quiet, payload truncated), otherwise round-to-nearest-even by
//! adding `0x7fff + lsb` before truncating (overflow rounds to ±inf).
//!
//! The dot product follows ggml-cpu vec.cpp `ggml_vec_dot_bf16` (scalar
//! branch): `f32` products summed in `f64`.

/// Bytes per value.
const SIZE: usize = 2;

/// ggml `ggml_compute_bf16_to_fp32`.
fn to_f32(b: &[u8]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
}

/// ggml `ggml_compute_fp32_to_bf16`, NaN handling included.
fn from_f32(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    // u + 0x7fff + lsb cannot overflow u32 for non-NaN u (< 0xff80_0001).
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// Bytes to floats (exact).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(SIZE)) {
        *y = to_f32(b);
    }
}

/// Floats to bfloat16 (see the module doc).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(SIZE)) {
        b.copy_from_slice(&from_f32(*x).to_le_bytes());
    }
}

/// `Σ w[i]·a[i]` over bfloat16 inputs (ggml `ggml_vec_dot_bf16`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (wb, ab) in w.chunks_exact(SIZE).zip(a.chunks_exact(SIZE)) {
        sum += f64::from(to_f32(wb) * to_f32(ab));
    }
    sum as f32
}

//! `F16` (ggml type 1): IEEE-754 binary16 values, and the `f16` helpers that
//! every format with a `ggml_half` scale uses.
//!
//! Layout (ggml.h `GGML_TYPE_F16`, `ggml_fp16_t` = `uint16_t`; block size 1,
//! type size 2), little-endian as everything in GGUF (ggml/docs/gguf.md):
//!
//! | bytes | field                         |
//! |-------|-------------------------------|
//! | 0..2  | binary16 bits, little-endian  |
//!
//! Conversion f32 → f16 is round-to-nearest-even with overflow to ±inf and
//! gradual underflow, as ggml-impl.h `ggml_compute_fp32_to_fp16` (done here
//! by the `half` crate); a NaN becomes ggml's canonical quiet NaN `0x7E00`
//! with the input's sign (the `shl1_w > 0xFF000000` branch there).
//!
//! The dot product follows ggml-cpu vec.cpp `ggml_vec_dot_f16` (scalar
//! branch): both sides widened to `f32`, each product rounded to `f32`, the
//! sum kept in `f64` and rounded to `f32` at the end.

use half::f16;

/// Bytes per value.
const SIZE: usize = 2;

/// The `f32` value of the little-endian `ggml_half` in `b[0..2]`
/// (ggml `GGML_FP16_TO_FP32`, exact).
pub(crate) fn read_f16(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// ggml `GGML_FP32_TO_FP16`: the binary16 bits nearest to `x` (ties to
/// even), NaN → `0x7E00` | sign.
pub(crate) fn f16_bits(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7E00 | ((x.to_bits() >> 16) as u16 & 0x8000);
    }
    f16::from_f32(x).to_bits()
}

/// Bytes to floats (exact: every binary16 value is a binary32 value).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(SIZE)) {
        *y = read_f16(b);
    }
}

/// Floats to binary16, round-to-nearest-even (see the module doc).
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(SIZE)) {
        b.copy_from_slice(&f16_bits(*x).to_le_bytes());
    }
}

/// `Σ w[i]·a[i]` over binary16 inputs (ggml `ggml_vec_dot_f16`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (wb, ab) in w.chunks_exact(SIZE).zip(a.chunks_exact(SIZE)) {
        sum += f64::from(read_f16(wb) * read_f16(ab));
    }
    sum as f32
}

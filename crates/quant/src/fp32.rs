//! `F32` (ggml type 0): plain IEEE-754 binary32 values.
//!
//! Layout (ggml.h `GGML_TYPE_F32`, block size 1, type size 4): each value is
//! 4 bytes, little-endian as everything in GGUF (ggml/docs/gguf.md):
//!
//! | bytes | field                |
//! |-------|----------------------|
//! | 0..4  | `f32` little-endian  |
//!
//! The dot product follows ggml-cpu vec.cpp `ggml_vec_dot_f32` (scalar
//! branch): each product is rounded to `f32`, the sum is kept in `f64`
//! (`ggml_float`) and rounded to `f32` once at the end.

/// Bytes per value.
const SIZE: usize = 4;

fn read(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Bytes to floats, bit for bit (NaN payloads included).
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    for (y, b) in dst.iter_mut().zip(src.chunks_exact(SIZE)) {
        *y = read(b);
    }
}

/// Floats to bytes, bit for bit.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    for (x, b) in src.iter().zip(dst.chunks_exact_mut(SIZE)) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

/// `Σ w[i]·a[i]`: `f32` products summed in `f64` (ggml `ggml_vec_dot_f32`).
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (wb, ab) in w.chunks_exact(SIZE).zip(a.chunks_exact(SIZE)) {
        sum += f64::from(read(wb) * read(ab));
    }
    sum as f32
}

//! `Q8_0R`, "row-planar `Q8_0`": shohin's activation format for the dot
//! products of `Q1_0`, `Q2_0` (g64) and `Q2_0` g128 / `PQ2_0`. Not a GGUF
//! type (its id is [`crate::types::NO_GGUF_ID`]); never stored in a file.
//!
//! The numbers are exactly `Q8_0`'s (ggml-common.h `block_q8_0`,
//! ggml-quants.c `quantize_row_q8_0_ref`): per block of 32 values the same
//! `d` (the f16-rounded `amax / 127`) and the same 32 `int8` quants, so a
//! dot product against them can reproduce ggml's `*_q8_0_generic` results
//! bit for bit. Only the layout differs. A row of `n` values (`nb = n / 32`
//! blocks, `40 · nb` bytes) is three planes:
//!
//! | bytes              | field                                               |
//! |--------------------|-----------------------------------------------------|
//! | `0 .. 32nb`        | the `n` quants, `int8`, in value order              |
//! | `32nb .. 36nb`     | `nb` scales `d`: the f16 value widened to `f32`, LE  |
//! | `36nb .. 40nb`     | `nb` block sums `Σ q` of the 32 quants, `i32`, LE   |
//!
//! Value `j` is `q[j] · d[j / 32]`. Why: `block_q8_0` puts a 2-byte scale
//! before every 32 quants, so SIMD loads of the quants straddle blocks and
//! every 32 weights cost a scalar scale load, for every one of the
//! thousands of weight rows that share the activations. Planes make the
//! quants one contiguous run, the scales a vector load, and the block sums
//! (which the kernels need for the `−offset` of `w = code − 1` or `2·bit − 1`)
//! free. The SIMD kernels rely on the sums plane being consistent with the
//! quants, as ggml's rely on `block_q8_K`'s `bsums`; [`quantize`] always
//! writes consistent sums.
//!
//! The planes are located from the row's length: functions here and the
//! kernels take `nb = bytes / 40` whole blocks and ignore trailing bytes.
//! Rows start wherever the caller's buffer puts them; nothing relies on
//! alignment.

use crate::fp16::read_f16;

/// Values per block (`QK8_0`).
pub(crate) const QK: usize = 32;
/// Bytes per block over the three planes: 32 quants, f32 `d`, i32 sum.
pub(crate) const BLOCK: usize = QK + 4 + 4;
/// Bytes of one `block_q8_0` (f16 `d`, then 32 quants).
const Q8_0_BLOCK: usize = 2 + QK;
/// `Q8_0` blocks quantized at a time by [`quantize_with`].
const CHUNK: usize = 16;

/// The three planes of a row of `bytes.len() / 40` blocks:
/// `(quants, scales, sums)`.
pub(crate) fn planes(a: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let nb = a.len() / BLOCK;
    let (q, rest) = a.split_at(QK * nb);
    let (d, rest) = rest.split_at(4 * nb);
    (q, d, &rest[..4 * nb])
}

/// Scale `d` of block `i` (an `f32` plane entry).
pub(crate) fn scale(d: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]])
}

/// Block `i` of the planes `(q, d, s)` from the `block_q8_0` `b`.
fn put_block((q, d, s): (&mut [u8], &mut [u8], &mut [u8]), i: usize, b: &[u8]) {
    q[QK * i..QK * (i + 1)].copy_from_slice(&b[2..]);
    d[4 * i..4 * i + 4].copy_from_slice(&read_f16(b).to_le_bytes());
    let sum: i32 = b[2..].iter().map(|&v| i32::from(v as i8)).sum();
    s[4 * i..4 * i + 4].copy_from_slice(&sum.to_le_bytes());
}

/// Quantize with a given `Q8_0` quantizer (the scalar reference or a SIMD
/// version, which are bit-exact with each other): `CHUNK` blocks at a time
/// into a stack buffer, then into the planes.
pub(crate) fn quantize_with(q8_0: crate::QuantizeFn, src: &[f32], dst: &mut [u8]) {
    let nb = src.len() / QK;
    debug_assert_eq!(dst.len() / BLOCK, nb);
    let (q, rest) = dst.split_at_mut(QK * nb);
    let (d, s) = rest.split_at_mut(4 * nb);
    let mut buf = [0u8; CHUNK * Q8_0_BLOCK];
    for (c, x) in src[..QK * nb].chunks(CHUNK * QK).enumerate() {
        let k = x.len() / QK;
        let buf = &mut buf[..k * Q8_0_BLOCK];
        q8_0(x, buf);
        let i0 = c * CHUNK;
        for (j, b) in buf.chunks_exact(Q8_0_BLOCK).enumerate() {
            put_block((&mut *q, &mut *d, &mut *s), i0 + j, b);
        }
    }
}

/// ggml-quants.c `quantize_row_q8_0_ref`, laid out as planes.
pub fn quantize(src: &[f32], dst: &mut [u8]) {
    quantize_with(crate::q8_0::quantize, src, dst);
}

/// ggml-quants.c `dequantize_row_q8_0` of the same numbers.
pub fn dequantize(src: &[u8], dst: &mut [f32]) {
    let (q, d, _) = planes(src);
    for (i, (y, qb)) in dst.chunks_exact_mut(QK).zip(q.chunks_exact(QK)).enumerate() {
        let d = scale(d, i);
        for (y, &v) in y.iter_mut().zip(qb) {
            *y = f32::from(v as i8) * d;
        }
    }
}

/// `Q8_0R · Q8_0R` (needed only to complete the kernel table): ggml-cpu
/// quants.c `ggml_vec_dot_q8_0_q8_0_generic` on the same numbers, same f32
/// order: per block the exact integer `Σ qw·qa` times `d_w·d_a`.
pub fn vec_dot(w: &[u8], a: &[u8]) -> f32 {
    let ((qw, dw, _), (qa, da, _)) = (planes(w), planes(a));
    let mut sum = 0f32;
    for (i, (bw, ba)) in qw.chunks_exact(QK).zip(qa.chunks_exact(QK)).enumerate() {
        let sumi: i32 = bw
            .iter()
            .zip(ba)
            .map(|(&x, &y)| i32::from(x as i8) * i32::from(y as i8))
            .sum();
        sum += sumi as f32 * (scale(dw, i) * scale(da, i));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_by_hand() {
        // two blocks: quants 1..=64 with block 1 negated, amax 32 and 64
        let x: Vec<f32> = (1..=64)
            .map(|v| if v > 32 { -(v as f32) } else { v as f32 })
            .collect();
        let mut a = vec![0xa5u8; 80];
        quantize(&x, &mut a);
        // quant of 32 in block 0 (d = 32/127) and of -64 in block 1: ∓127
        assert_eq!(a[31] as i8, 127);
        assert_eq!(a[63] as i8, -127);
        let d0 = f32::from_le_bytes(a[64..68].try_into().unwrap());
        let want = half::f16::from_f32(32.0 / 127.0).to_f32();
        assert_eq!(d0, want);
        let s0 = i32::from_le_bytes(a[72..76].try_into().unwrap());
        let s1 = i32::from_le_bytes(a[76..80].try_into().unwrap());
        let by_hand: i32 = a[..32].iter().map(|&v| i32::from(v as i8)).sum();
        assert_eq!(s0, by_hand);
        assert!(s0 > 0 && s1 < 0);
        assert!(vec_dot(&a, &a) > 0.0);
    }
}

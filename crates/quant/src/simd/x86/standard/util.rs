//! Small building blocks shared by the kernels of this module: bounds-checked
//! vector loads from byte slices, horizontal sums in a fixed order, `f16`
//! scale broadcasts, and the split of `vec_dot_multi`'s activation buffer
//! into rows.
//!
//! Every function here is a safe `#[target_feature]` function: calling it
//! from a function with the same features is safe, and only the kernels'
//! entry points (installed by `apply` after detection) are called from
//! outside such a context.

use std::arch::x86_64::*;

/// `vec_dot_multi` processes activation rows in tiles of at most this many
/// (the engine's token tile is 8): per-row accumulators of a tile stay in a
/// small stack array while each weight block is decoded once per tile.
pub(super) const TILE: usize = 8;

/// 32 bytes of `b` from `off` (panics, never reads out of bounds, when
/// `b` is too short; the checks fold away for fixed-size blocks).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn ld32(b: &[u8], off: usize) -> __m256i {
    let s = &b[off..off + 32];
    // SAFETY: `s` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

/// 16 bytes of `b` from `off` (bounds-checked like [`ld32`]).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn ld16(b: &[u8], off: usize) -> __m128i {
    let s = &b[off..off + 16];
    // SAFETY: `s` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
}

/// 64 bytes of `b` from `off` (bounds-checked like [`ld32`]).
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn ld64(b: &[u8], off: usize) -> __m512i {
    let s = &b[off..off + 64];
    // SAFETY: `s` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(s.as_ptr().cast()) }
}

/// 8 `f32` of `x` from `off`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn ld_ps(x: &[f32], off: usize) -> __m256 {
    let s = &x[off..off + 8];
    // SAFETY: `s` is 8 readable floats; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

/// Store 32 bytes at `b[off..]` (bounds-checked).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn st32(b: &mut [u8], off: usize, v: __m256i) {
    let s = &mut b[off..off + 32];
    // SAFETY: `s` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), v) }
}

/// The little-endian `f32` at `b[off..off + 4]`.
#[inline(always)]
pub(super) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The `f32` value of the little-endian `ggml_half` at `b[off..off + 2]`
/// (F16C, exact like `crate::fp16::read_f16`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(super) fn f16_at(b: &[u8], off: usize) -> f32 {
    let bits = u16::from_le_bytes([b[off], b[off + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// `Σ` of the 8 lanes, always in the same order: halves, then pairs.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The 8 wrapping lane sums of 8 vectors at once: lane `j` of the result
/// is `Σ v[j]` (a transposed reduction: 6 `hadd`, 2 permutes, 1 add instead
/// of 8 separate horizontal sums).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn transpose_sum(v: &[__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(v[0], v[1]);
    let h23 = _mm256_hadd_epi32(v[2], v[3]);
    let h45 = _mm256_hadd_epi32(v[4], v[5]);
    let h67 = _mm256_hadd_epi32(v[6], v[7]);
    // [v0 v1 v2 v3 (lanes 0..4) | the same, lanes 4..8]
    let q0 = _mm256_hadd_epi32(h01, h23);
    let q1 = _mm256_hadd_epi32(h45, h67);
    let lo = _mm256_permute2x128_si256::<0x20>(q0, q1);
    let hi = _mm256_permute2x128_si256::<0x31>(q0, q1);
    _mm256_add_epi32(lo, hi)
}

/// Rows `t0 .. t0 + n` of `vec_dot_multi`'s activations (`a_row` bytes
/// apart), each cut to its first `len` bytes, written into `buf`.
pub(super) fn act_rows<'a>(
    a: &'a [u8],
    a_row: usize,
    t0: usize,
    len: usize,
    buf: &mut [&'a [u8]; TILE],
    n: usize,
) {
    for (r, slot) in buf.iter_mut().enumerate().take(n) {
        let start = (t0 + r) * a_row;
        *slot = &a[start..start + len];
    }
}

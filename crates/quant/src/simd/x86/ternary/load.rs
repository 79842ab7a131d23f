//! Bounds-checked unaligned loads: the only raw-pointer reads of the
//! ternary kernels. Each takes a slice and an offset and slices first, so a
//! wrong offset panics instead of reading out of bounds; with the constant
//! offsets the kernels use, the checks fold away after one length check per
//! group of blocks.

use std::arch::x86_64::*;

/// 16 bytes of `s` from `off`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn ld128(s: &[u8], off: usize) -> __m128i {
    let b = &s[off..off + 16];
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// 32 bytes of `s` from `off`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn ld256(s: &[u8], off: usize) -> __m256i {
    let b = &s[off..off + 32];
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// 64 bytes of `s` from `off`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn ld512(s: &[u8], off: usize) -> __m512i {
    let b = &s[off..off + 64];
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

/// Little-endian u16 of `s` at `off`.
#[inline(always)]
pub(super) fn u16_at(s: &[u8], off: usize) -> u16 {
    let b: [u8; 2] = s[off..off + 2].try_into().unwrap_or([0; 2]);
    u16::from_le_bytes(b)
}

/// Little-endian u32 of `s` at `off`.
#[inline]
pub(super) fn u32_at(s: &[u8], off: usize) -> u32 {
    let b: [u8; 4] = s[off..off + 4].try_into().unwrap_or([0; 4]);
    u32::from_le_bytes(b)
}

/// Little-endian u64 of `s` at `off`.
#[inline]
pub(super) fn u64_at(s: &[u8], off: usize) -> u64 {
    let b: [u8; 8] = s[off..off + 8].try_into().unwrap_or([0; 8]);
    u64::from_le_bytes(b)
}

//! Activation quantizers `Q8_0`, `Q8_1` and `Q8_K` (AVX2), bit for bit
//! equal to the scalar references `crate::q8_0::quantize` (ggml-quants.c
//! `quantize_row_q8_0_ref`), `crate::q8_1::quantize`
//! (`quantize_row_q8_1_ref`: `Q8_0`'s quants plus the block sum) and
//! `crate::q8_k::quantize` (`quantize_row_q8_K_ref`) for every input, NaN
//! and infinities included.
//!
//! The scales are computed with the references' own scalar expressions;
//! only the per-value work is vectorized, with the same `f32` operations:
//!
//! * `Q8_0` rounds `v·id` half away from zero (`roundf`), as
//!   `trunc(x + copysign(0.49999997, x))`: with `0.49999997 = 0.5 − 2⁻²⁵`
//!   the sum rounds up to the next integer exactly when `|frac(x)| >= 0.5`
//!   (the case `x = k + 0.5` rounds the tie `k + 1 − 2⁻²⁵` to the even
//!   `k + 1`). (ggml's own AVX2 quantizer rounds ties to even instead; the
//!   reference's `roundf` is what shohin matches.) Blocks whose maximum is
//!   not finite, or whose `1/d` overflows, go to the scalar code.
//! * `Q8_K` uses `nearest_int`'s magic-number addition (ties to even) and
//!   keeps its low 8 bits like the C cast; the signed maximum is found as
//!   the larger of `max(x)` and `−min(x)` (NaN skipped as in the
//!   reference's `>` scan), with a scalar scan for the first occurrence
//!   only when both `+amax` and `−amax` occur.

use super::util::{ld_ps, st32};
use crate::fp16::f16_bits;
use std::arch::x86_64::*;

/// Values per `Q8_0` block and bytes per block (ggml-common.h).
const QK8_0: usize = 32;
const Q8_0: usize = 34;
/// Bytes per `Q8_1` block (ggml-common.h: `d`, `s`, 32 quants).
const Q8_1: usize = 36;
/// Values per `Q8_K` block and bytes per block (ggml-common.h).
const QK: usize = crate::QK_K;
const Q8_K: usize = 4 + QK + 2 * (QK / 16);
/// The largest `f32` below 0.5 (bits `0x3EFF_FFFF`).
const BELOW_HALF: f32 = 0.499_999_97;

/// Unsigned-compatible maximum of the 8 `i32` lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hmax_i32(v: __m256i) -> i32 {
    let s = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_max_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_max_epi32(s, _mm_shuffle_epi32::<0b01>(s));
    _mm_cvtsi128_si32(s)
}

#[target_feature(enable = "avx2")]
#[inline]
fn hmax_ps(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[target_feature(enable = "avx2")]
#[inline]
fn hmin_ps(v: __m256) -> f32 {
    let s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_min_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 4 vectors of `i32` (values in `i8` range, or any for `unsigned`) to 32
/// bytes in lane order: signed saturation, or truncation to the low byte.
#[target_feature(enable = "avx2")]
#[inline]
fn pack_bytes(q: [__m256i; 4], truncate: bool) -> __m256i {
    let p = if truncate {
        let m = _mm256_set1_epi32(0xFF);
        let [a, b, c, d] = q.map(|v| _mm256_and_si256(v, m));
        _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d))
    } else {
        let p01 = _mm256_packs_epi32(q[0], q[1]);
        let p23 = _mm256_packs_epi32(q[2], q[3]);
        _mm256_packs_epi16(p01, p23)
    };
    // The packs interleave 128-bit lanes: dwords are [q0a q1a q2a q3a q0b
    // q1b q2b q3b] (a/b = first/last 4 values of each vector).
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// One `Q8_0`/`Q8_1` block's quants (module doc) as 4 vectors of `i32`
/// (values in −127..=127) and its `f32` scale `d`, not yet rounded to
/// `f16`; `None` for the blocks the scalar code handles (maximum not
/// finite, `1/d` overflows).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q8_block(x: &[f32; QK8_0]) -> Option<(f32, [__m256i; 4])> {
    let abs = _mm256_set1_epi32(0x7FFF_FFFF);
    let v = [ld_ps(x, 0), ld_ps(x, 8), ld_ps(x, 16), ld_ps(x, 24)];
    // Max of |v| on the bit patterns: integer order is float order for
    // non-negative floats, and NaN/inf land at or above 0x7F80_0000.
    let bits = v.map(|v| _mm256_and_si256(_mm256_castps_si256(v), abs));
    let m = _mm256_max_epi32(
        _mm256_max_epi32(bits[0], bits[1]),
        _mm256_max_epi32(bits[2], bits[3]),
    );
    let amax_bits = hmax_i32(m);
    if amax_bits >= 0x7F80_0000 {
        return None;
    }
    let amax = f32::from_bits(amax_bits as u32);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    if !id.is_finite() {
        return None;
    }
    let idv = _mm256_set1_ps(id);
    let sign = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(BELOW_HALF);
    let q = v.map(|v| {
        let x = _mm256_mul_ps(v, idv);
        let h = _mm256_or_ps(_mm256_and_ps(x, sign), half);
        let r = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm256_add_ps(x, h));
        _mm256_cvttps_epi32(r)
    });
    Some((d, q))
}

/// `Q8_0` quantize (module doc).
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_imp(src: &[f32], dst: &mut [u8]) {
    let (xs, xr) = src.as_chunks::<QK8_0>();
    let (bs, br) = dst.as_chunks_mut::<Q8_0>();
    debug_assert!(xr.is_empty() && br.is_empty() && xs.len() == bs.len());
    for (x, b) in xs.iter().zip(bs) {
        let Some((d, q)) = q8_block(x) else {
            crate::q8_0::quantize(x, b);
            continue;
        };
        b[..2].copy_from_slice(&f16_bits(d).to_le_bytes());
        st32(b, 2, pack_bytes(q, false));
    }
}

/// `Q8_1` quantize: `Q8_0`'s quants and `d`, plus the block sum `s =
/// f16(Σq · d)` (crate::q8_1::quantize; `Σq` is exact, the lanes never
/// saturate in the pack, so the `i32` lanes sum to the stored bytes).
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_1_imp(src: &[f32], dst: &mut [u8]) {
    let (xs, xr) = src.as_chunks::<QK8_0>();
    let (bs, br) = dst.as_chunks_mut::<Q8_1>();
    debug_assert!(xr.is_empty() && br.is_empty() && xs.len() == bs.len());
    for (x, b) in xs.iter().zip(bs) {
        let Some((d, q)) = q8_block(x) else {
            crate::q8_1::quantize(x, b);
            continue;
        };
        let t = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let t = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t));
        let t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
        let sum = _mm_cvtsi128_si32(_mm_add_epi32(t, _mm_shuffle_epi32::<0b01>(t)));
        // `d` and `s` to `f16` in one F16C conversion, round to nearest
        // even like `f16_bits`: equal for all non-NaN values, and both are
        // finite or ±inf here (`d` finite, `|Σq| <= 4064`).
        let ds = _mm_setr_ps(d, sum as f32 * d, 0.0, 0.0);
        let h = _mm_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(ds);
        b[..4].copy_from_slice(&_mm_cvtsi128_si32(h).to_le_bytes());
        st32(b, 4, pack_bytes(q, false));
    }
}

/// `Q8_K` quantize (module doc).
#[target_feature(enable = "avx2,fma,f16c")]
fn q8_k_imp(src: &[f32], dst: &mut [u8]) {
    let (xs, xr) = src.as_chunks::<QK>();
    let (bs, br) = dst.as_chunks_mut::<Q8_K>();
    debug_assert!(xr.is_empty() && br.is_empty() && xs.len() == bs.len());
    for (x, b) in xs.iter().zip(bs) {
        // `max_ps(x, acc)` returns `acc` when `x` is NaN: NaN is skipped.
        let (mut hi, mut lo) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for j in (0..QK).step_by(8) {
            let v = ld_ps(x, j);
            hi = _mm256_max_ps(v, hi);
            lo = _mm256_min_ps(v, lo);
        }
        let (hi, lo) = (hmax_ps(hi), -hmin_ps(lo));
        let amax = hi.max(lo);
        if amax == 0.0 {
            b.fill(0);
            continue;
        }
        let max = if hi > lo {
            hi
        } else if lo > hi {
            -lo
        } else {
            // Both signs reach amax: the reference keeps the first.
            *x.iter().find(|v| v.abs() == amax).unwrap_or(&amax)
        };
        let iscale = -127.0 / max;
        let sv = _mm256_set1_ps(iscale);
        let magic = _mm256_set1_ps(12_582_912.0);
        let mant = _mm256_set1_epi32(0x007F_FFFF);
        let bias = _mm256_set1_epi32(0x0040_0000);
        let top = _mm256_set1_epi32(127);
        let mut q = [_mm256_setzero_si256(); 8];
        for (k, qk) in q.iter_mut().enumerate() {
            let w = [0, 8, 16, 24].map(|o| {
                let t = _mm256_add_ps(_mm256_mul_ps(sv, ld_ps(x, 32 * k + o)), magic);
                let n = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), mant), bias);
                _mm256_min_epi32(n, top)
            });
            *qk = pack_bytes(w, true);
            st32(b, 4 + 32 * k, *qk);
        }
        st32(b, 4 + QK, bsums(&q));
        b[..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
    }
}

/// The 16 `i16` sums of 16 quants each, from the 8 vectors of 32 quants.
#[target_feature(enable = "avx2")]
#[inline]
fn bsums(q: &[__m256i; 8]) -> __m256i {
    let ones = _mm256_set1_epi8(1);
    // Vector k holds group 2k in its low lane and 2k+1 in its high lane.
    let p = q.map(|v| _mm256_maddubs_epi16(ones, v));
    let h01 = _mm256_hadd_epi16(p[0], p[1]);
    let h23 = _mm256_hadd_epi16(p[2], p[3]);
    let h45 = _mm256_hadd_epi16(p[4], p[5]);
    let h67 = _mm256_hadd_epi16(p[6], p[7]);
    // Low lane: groups 0,2,..,14; high lane: 1,3,..,15.
    let s = _mm256_hadd_epi16(_mm256_hadd_epi16(h01, h23), _mm256_hadd_epi16(h45, h67));
    let (even, odd) = (_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    _mm256_set_m128i(_mm_unpackhi_epi16(even, odd), _mm_unpacklo_epi16(even, odd))
}

pub(super) fn q8_0(src: &[f32], dst: &mut [u8]) {
    // SAFETY: installed by apply() only after detection of AVX2+FMA+F16C.
    unsafe { q8_0_imp(src, dst) }
}

pub(super) fn q8_1(src: &[f32], dst: &mut [u8]) {
    // SAFETY: installed by apply() only after detection of AVX2+FMA+F16C.
    unsafe { q8_1_imp(src, dst) }
}

pub(super) fn q8_k(src: &[f32], dst: &mut [u8]) {
    // SAFETY: installed by apply() only after detection of AVX2+FMA+F16C.
    unsafe { q8_k_imp(src, dst) }
}

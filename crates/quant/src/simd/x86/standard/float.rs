//! `F32·F32` and `F16·F16` dot products, AVX2 (ggml-cpu vec.cpp
//! `ggml_vec_dot_f32` / `ggml_vec_dot_f16`, rewritten).
//!
//! The scalar references round each product to `f32` and sum in `f64`
//! (ggml's `ggml_float`); here too: the same `f32` products (exact `f16` →
//! `f32` conversions, one `f32` multiply), widened to `f64` and summed in 4
//! vector accumulators (16 values per step: two halves of 8, each split in
//! 2×4 lanes), a scalar `f64` tail, and one final rounding to `f32`. Only
//! the `f64` addition order differs from the reference: both `f64` sums lie
//! within `n·2⁻⁵³·T` of the exact sum (`T = Σ|w_i·a_i|`), so the results
//! differ by at most `(2⁻²³ + n·2⁻⁵²)·T` after rounding to `f32`. The
//! per-row sequence is the same in `vec_dot_multi`, bit for bit.

use super::util::{act_rows, ld16, TILE};
use std::arch::x86_64::*;

/// Four `f64` accumulators of one row.
type Acc = [__m256d; 4];

/// Adds the 8 products `w·a` (as `f32`, widened) to `acc[2h]`, `acc[2h+1]`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn step(acc: &mut Acc, h: usize, w: __m256, a: __m256) {
    let p = _mm256_mul_ps(w, a);
    acc[2 * h] = _mm256_add_pd(acc[2 * h], _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    acc[2 * h + 1] = _mm256_add_pd(
        acc[2 * h + 1],
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(p)),
    );
}

/// The row's total: accumulators in a fixed order, then the tail.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn finish(acc: &Acc, tail: f64) -> f32 {
    let v = _mm256_add_pd(_mm256_add_pd(acc[0], acc[2]), _mm256_add_pd(acc[1], acc[3]));
    let s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v));
    let s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    (_mm_cvtsd_f64(s) + tail) as f32
}

/// 8 `f32` from little-endian bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn ld_f32(b: &[u8], i: usize) -> __m256 {
    let s = &b[4 * i..4 * i + 32];
    // SAFETY: `s` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(s.as_ptr().cast()) }
}

/// 8 `f16` from little-endian bytes, converted exactly.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn ld_f16(b: &[u8], i: usize) -> __m256 {
    _mm256_cvtph_ps(ld16(b, 2 * i))
}

fn one_f32(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

fn one_f16(b: &[u8], i: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32()
}

macro_rules! float_kernel {
    ($size:expr, $ld:ident, $one:ident, $tile:ident, $vec_dot:ident, $multi:ident) => {
        /// Up to [`TILE`] activation rows against one weight row (one row
        /// is `vec_dot`).
        #[target_feature(enable = "avx2,fma,f16c")]
        fn $tile(w: &[u8], rows: &[&[u8]], out: &mut [f32]) {
            debug_assert!(rows.len() == out.len() && out.len() <= TILE);
            let n = w.len() / $size;
            let mut acc = [[_mm256_setzero_pd(); 4]; TILE];
            let mut i = 0;
            while i + 16 <= n {
                let (w0, w1) = ($ld(w, i), $ld(w, i + 8));
                for (acc, a) in acc.iter_mut().zip(rows) {
                    step(acc, 0, w0, $ld(a, i));
                    step(acc, 1, w1, $ld(a, i + 8));
                }
                i += 16;
            }
            if i + 8 <= n {
                let w0 = $ld(w, i);
                for (acc, a) in acc.iter_mut().zip(rows) {
                    step(acc, 0, w0, $ld(a, i));
                }
                i += 8;
            }
            for ((o, acc), a) in out.iter_mut().zip(&acc).zip(rows) {
                let mut tail = 0f64;
                for j in i..n {
                    tail += f64::from($one(w, j) * $one(a, j));
                }
                *o = finish(acc, tail);
            }
        }

        pub(super) fn $vec_dot(w: &[u8], a: &[u8]) -> f32 {
            debug_assert!(w.len() == a.len() && w.len() % $size == 0);
            let mut out = [0f32];
            // SAFETY: installed by apply() only after detection of
            // AVX2+FMA+F16C.
            unsafe { $tile(w, &[a], &mut out) };
            out[0]
        }

        pub(super) fn $multi(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
            let mut rows: [&[u8]; TILE] = [&[]; TILE];
            for (ti, o) in out.chunks_mut(TILE).enumerate() {
                act_rows(a, a_row, ti * TILE, w.len(), &mut rows, o.len());
                // SAFETY: installed by apply() only after detection of
                // AVX2+FMA+F16C.
                unsafe { $tile(w, &rows[..o.len()], o) };
            }
        }
    };
}

float_kernel!(4, ld_f32, one_f32, f32_tile, f32_dot, f32_multi);
float_kernel!(2, ld_f16, one_f16, f16_tile, f16_dot, f16_multi);

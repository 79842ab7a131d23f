//! `Q4_K`, `Q5_K` and `Q6_K` weights · `Q8_K` activations, AVX2 (after
//! ggml-cpu arch/x86/quants.c `ggml_vec_dot_q{4,5,6}_K_q8_K`, rewritten).
//!
//! A super-block's weights are decoded once into unsigned levels
//! (`0..=15`, `0..=31`, `0..=63`) and per-sub-block `i16` scale vectors;
//! each activation row then takes `maddubs(level, a)` (pairs at most
//! 2·63·128 = 16128, no saturation) and `madd` with the scales, giving the
//! exact integers `isum = Σ_j sc_j·Σ q·a` and, through the `Q8_K` block
//! sums, `msum = Σ_g bsums[g]·m_{g/2}` (`Q4_K`/`Q5_K`) or the `Q6_K` offset
//! `32·Σ_g sc_g·bsums[g]`. The `f32` combination is the scalar reference's,
//! operation for operation, so the results are bit for bit equal.

use super::util::{f16_at, ld16, ld32};
use std::arch::x86_64::*;

/// Bytes per `block_q4_K`, `block_q5_K`, `block_q6_K`, `block_q8_K`
/// (ggml-common.h).
pub(super) const Q4K: usize = 144;
pub(super) const Q5K: usize = 176;
pub(super) const Q6K: usize = 210;
pub(super) const Q8K: usize = 292;
/// Offset of `bsums` in `block_q8_K`.
pub(super) const BSUMS: usize = 260;

/// The 8 6-bit scales and 8 6-bit mins of `Q4_K`/`Q5_K` (ggml-quants.c
/// `get_scale_min_k4`, see `crate::q4_k::scale_min`) from the 12 packed
/// bytes, as two little-endian `u64` of one byte per sub-block. Bytes 0..4
/// of each come from the low 6 bits of `s[0..4]` / `s[4..8]`; bytes 4..8
/// from the nibbles of `s[8..12]` with bits 4..6 from the top 2 bits of
/// `s[0..4]` (scales) / `s[4..8]` (mins).
#[inline(always)]
pub(super) fn scales_mins(s: &[u8]) -> (u64, u64) {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    let (w0, w1, w2) = (w(0), w(4), w(8));
    let sc_lo = w0 & 0x3F3F_3F3F;
    let m_lo = w1 & 0x3F3F_3F3F;
    let sc_hi = (w2 & 0x0F0F_0F0F) | (((w0 >> 6) & 0x0303_0303) << 4);
    let m_hi = ((w2 >> 4) & 0x0F0F_0F0F) | (((w1 >> 6) & 0x0303_0303) << 4);
    (
        u64::from(sc_lo) | (u64::from(sc_hi) << 32),
        u64::from(m_lo) | (u64::from(m_hi) << 32),
    )
}

/// A decoded `Q4_K`/`Q5_K` super-block: levels of sub-block `s` in `q[s]`,
/// its scale broadcast as `i16` in `sc[s]`, the mins as 16 `i16` lanes
/// `m_{g/2}` (matching the 16 block sums), and `d`, `dmin`.
pub(super) struct DecK {
    q: [__m256i; 8],
    sc: [__m256i; 8],
    mins: __m256i,
    d: f32,
    dmin: f32,
}

/// Scale and min vectors of a `Q4_K`/`Q5_K` block (scales at `b[4..16]`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn scale_vectors(b: &[u8]) -> ([__m256i; 8], __m256i) {
    let (sc8, m8) = scales_mins(&b[4..16]);
    let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi64x(0, sc8 as i64)));
    let mut sc = [_mm256_setzero_si256(); 8];
    for (s, v) in sc.iter_mut().enumerate() {
        // Bytes 2s, 2s+1 (the i16 scale s) into every i16 lane.
        let pick = (((2 * s + 1) << 8) | (2 * s)) as i16;
        *v = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(pick));
    }
    let m = _mm_set_epi64x(0, m8 as i64);
    let mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
    (sc, mins)
}

/// ggml-common.h `block_q4_K`: `d`, `dmin`, `scales[12]`, `qs[128]` where
/// 32-byte chunk `c` holds sub-block `2c` (low nibbles), `2c+1` (high).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q4k_decode(b: &[u8]) -> DecK {
    let (sc, mins) = scale_vectors(b);
    let m4 = _mm256_set1_epi8(0x0F);
    let mut q = [_mm256_setzero_si256(); 8];
    for c in 0..4 {
        let x = ld32(b, 16 + 32 * c);
        q[2 * c] = _mm256_and_si256(x, m4);
        q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(x), m4);
    }
    DecK {
        q,
        sc,
        mins,
        d: f16_at(b, 0),
        dmin: f16_at(b, 2),
    }
}

/// ggml-common.h `block_q5_K`: as `Q4_K` with `qh[32]` at 16 (bit `s` of
/// `qh[l]` = bit 4 of weight `l` of sub-block `s`) and `qs` at 48.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q5k_decode(b: &[u8]) -> DecK {
    let (sc, mins) = scale_vectors(b);
    let m4 = _mm256_set1_epi8(0x0F);
    let b4 = _mm256_set1_epi8(0x10);
    let qh = ld32(b, 16);
    let mut q = [_mm256_setzero_si256(); 8];
    for c in 0..4 {
        let x = ld32(b, 48 + 32 * c);
        q[2 * c] = _mm256_and_si256(x, m4);
        q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(x), m4);
    }
    for (s, q) in q.iter_mut().enumerate() {
        // Bit s of every byte moved to bit 4 (16-bit shifts only move bits
        // across bytes into positions the mask drops).
        let h = if s <= 4 {
            _mm256_sll_epi16(qh, _mm_cvtsi32_si128(4 - s as i32))
        } else {
            _mm256_srl_epi16(qh, _mm_cvtsi32_si128(s as i32 - 4))
        };
        *q = _mm256_or_si256(*q, _mm256_and_si256(h, b4));
    }
    DecK {
        q,
        sc,
        mins,
        d: f16_at(b, 0),
        dmin: f16_at(b, 2),
    }
}

/// The lanes of `(isum, msum)` of one `Q8_K` block against a decoded
/// `Q4_K`/`Q5_K` (each the sum of its 8 lanes).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn k_row(k: &DecK, a: &[u8]) -> (__m256i, __m256i) {
    let mut acc = _mm256_setzero_si256();
    for s in 0..8 {
        let p = _mm256_maddubs_epi16(k.q[s], ld32(a, 4 + 32 * s));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, k.sc[s]));
    }
    (acc, _mm256_madd_epi16(ld32(a, BSUMS), k.mins))
}

/// A decoded `Q6_K` super-block: levels `0..=63` of the 32 weights
/// `128h + 32k + l` in `q[4h+k]`, the two matching scales as `i16` lanes
/// (8 + 8) in `sc[4h+k]`, all 16 scales as `i16` in `all`, and `d`.
pub(super) struct Dec6 {
    q: [__m256i; 8],
    sc: [__m256i; 8],
    all: __m256i,
    d: f32,
    /// Always 0 (no minimums); lets `Q6_K` share the kernel driver.
    dmin: f32,
}

/// ggml-common.h `block_q6_K`: `ql[128]`, `qh[64]`, `scales[16]`, `d`; the
/// bit layout is `crate::q6_k`'s (ggml-quants.c `dequantize_row_q6_K`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q6k_decode(b: &[u8]) -> Dec6 {
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(0x30);
    let mut q = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let q1 = ld32(b, 64 * h);
        let q2 = ld32(b, 64 * h + 32);
        let qh = ld32(b, 128 + 32 * h);
        // High bits 2k..2k+2 of qh to bits 4..6 (16-bit shifts only spill
        // into bits the mask drops).
        let hb = [
            _mm256_slli_epi16::<4>(qh),
            _mm256_slli_epi16::<2>(qh),
            qh,
            _mm256_srli_epi16::<2>(qh),
        ];
        let lo = [
            _mm256_and_si256(q1, m4),
            _mm256_and_si256(q2, m4),
            _mm256_and_si256(_mm256_srli_epi16::<4>(q1), m4),
            _mm256_and_si256(_mm256_srli_epi16::<4>(q2), m4),
        ];
        for k in 0..4 {
            q[4 * h + k] = _mm256_or_si256(lo[k], _mm256_and_si256(hb[k], m2));
        }
    }
    let scales = ld16(b, 192);
    let mut sc = [_mm256_setzero_si256(); 8];
    for (m, v) in sc.iter_mut().enumerate() {
        // Bytes 0..8 ← scale 2m, bytes 8..16 ← scale 2m+1, widened.
        let pick = _mm_set_epi64x(
            (0x0101_0101_0101_0101 * (2 * m as u64 + 1)) as i64,
            (0x0101_0101_0101_0101 * (2 * m as u64)) as i64,
        );
        *v = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pick));
    }
    Dec6 {
        q,
        sc,
        all: _mm256_cvtepi8_epi16(scales),
        d: f16_at(b, 208),
        dmin: 0.0,
    }
}

/// The lanes of `Σ_j sc_j·Σ (q−32)·a` of one `Q8_K` block against a
/// decoded `Q6_K` (no minimums: the second vector is zero).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q6k_row(k: &Dec6, a: &[u8]) -> (__m256i, __m256i) {
    let mut acc = _mm256_setzero_si256();
    for m in 0..8 {
        let p = _mm256_maddubs_epi16(k.q[m], ld32(a, 4 + 32 * m));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, k.sc[m]));
    }
    let off = _mm256_madd_epi16(ld32(a, BSUMS), k.all);
    let isum = _mm256_sub_epi32(acc, _mm256_slli_epi32::<5>(off));
    (isum, _mm256_setzero_si256())
}

/// Generates the single-row and tile kernels of a K-quant and their safe
/// wrappers. `$row` returns a super-block's `isum` and `msum` as 8 lanes
/// each; their horizontal sums are taken 8 at a time by `transpose_sum`
/// (over 8 super-blocks in `vec_dot`, over the rows of a tile in
/// `vec_dot_multi`), then the reference's `f32` steps follow exactly:
/// `sum += d·da·isum; sum -= dmin·da·msum` (the latter only `if $min`) —
/// in `vec_dot_multi` lane-wise over the rows, same operations per lane.
macro_rules! kquant {
    ($feat:literal, $wb:expr, $decode:path, $row:path, $min:literal,
     $single:ident, $tile:ident, $vec_dot:ident, $multi:ident) => {
        #[target_feature(enable = $feat)]
        fn $single(w: &[u8], a: &[u8]) -> f32 {
            use $crate::simd::x86::standard::k_avx2::Q8K;
            use $crate::simd::x86::standard::util::{f32_at, transpose_sum};
            let (wb, wr) = w.as_chunks::<$wb>();
            let (ab, ar) = a.as_chunks::<Q8K>();
            debug_assert!(wr.is_empty() && ar.is_empty() && wb.len() == ab.len());
            let mut sum = 0f32;
            for (wg, ag) in wb.chunks(8).zip(ab.chunks(8)) {
                let mut acc = [_mm256_setzero_si256(); 8];
                let mut m = [_mm256_setzero_si256(); 8];
                let mut d = [(0f32, 0f32); 8];
                for (j, (bw, ba)) in wg.iter().zip(ag).enumerate() {
                    let k = $decode(bw);
                    (acc[j], m[j]) = $row(&k, ba);
                    d[j] = (k.d, k.dmin);
                }
                let mut isum = [0i32; 8];
                let mut msum = [0i32; 8];
                // SAFETY: each array is 8 writable `i32` (32 bytes);
                // `storeu` has no alignment requirement.
                unsafe {
                    _mm256_storeu_si256(isum.as_mut_ptr().cast(), transpose_sum(&acc));
                    if $min {
                        _mm256_storeu_si256(msum.as_mut_ptr().cast(), transpose_sum(&m));
                    }
                }
                for (j, ba) in ag.iter().enumerate() {
                    let (dw, dmin) = d[j];
                    let da = f32_at(ba, 0);
                    sum += dw * da * isum[j] as f32;
                    if $min {
                        sum -= dmin * da * msum[j] as f32;
                    }
                }
            }
            sum
        }

        /// Up to `TILE` activation rows against one weight row.
        #[target_feature(enable = $feat)]
        fn $tile(w: &[u8], rows: &[&[u8]], out: &mut [f32]) {
            use $crate::simd::x86::standard::k_avx2::Q8K;
            use $crate::simd::x86::standard::util::{f32_at, transpose_sum, TILE};
            let (wb, wr) = w.as_chunks::<$wb>();
            let n = rows.len();
            debug_assert!(wr.is_empty() && n == out.len() && n <= TILE && TILE == 8);
            let mut sums = _mm256_setzero_ps();
            for (i, bw) in wb.iter().enumerate() {
                let k = $decode(bw);
                let mut acc = [_mm256_setzero_si256(); 8];
                let mut m = [_mm256_setzero_si256(); 8];
                for (r, a) in rows.iter().enumerate() {
                    (acc[r], m[r]) = $row(&k, &a[i * Q8K..(i + 1) * Q8K]);
                }
                let mut da = [0f32; 8];
                for (d, a) in da.iter_mut().zip(rows) {
                    *d = f32_at(a, i * Q8K);
                }
                let da = _mm256_setr_ps(da[0], da[1], da[2], da[3], da[4], da[5], da[6], da[7]);
                let isum = _mm256_cvtepi32_ps(transpose_sum(&acc));
                let t = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(k.d), da), isum);
                sums = _mm256_add_ps(sums, t);
                if $min {
                    let msum = _mm256_cvtepi32_ps(transpose_sum(&m));
                    let t = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(k.dmin), da), msum);
                    sums = _mm256_sub_ps(sums, t);
                }
            }
            let mut all = [0f32; 8];
            // SAFETY: `all` is 8 writable floats; `storeu` has no alignment
            // requirement.
            unsafe { _mm256_storeu_ps(all.as_mut_ptr(), sums) };
            out.copy_from_slice(&all[..n]);
        }

        pub(super) fn $vec_dot(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: installed by apply() only after detection of the
            // target features of this kernel.
            unsafe { $single(w, a) }
        }

        pub(super) fn $multi(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
            use $crate::simd::x86::standard::util::{act_rows, TILE};
            let len = w.len() / $wb * $crate::simd::x86::standard::k_avx2::Q8K;
            let mut rows: [&[u8]; TILE] = [&[]; TILE];
            for (ti, o) in out.chunks_mut(TILE).enumerate() {
                act_rows(a, a_row, ti * TILE, len, &mut rows, o.len());
                // SAFETY: installed by apply() only after detection of the
                // target features of this kernel.
                unsafe { $tile(w, &rows[..o.len()], o) };
            }
        }
    };
}
pub(super) use kquant;

kquant!(
    "avx2,fma,f16c",
    Q4K,
    q4k_decode,
    k_row,
    true,
    q4k_single,
    q4k_tile,
    q4_k,
    q4_k_multi
);
kquant!(
    "avx2,fma,f16c",
    Q5K,
    q5k_decode,
    k_row,
    true,
    q5k_single,
    q5k_tile,
    q5_k,
    q5_k_multi
);
kquant!(
    "avx2,fma,f16c",
    Q6K,
    q6k_decode,
    q6k_row,
    false,
    q6k_single,
    q6k_tile,
    q6_k,
    q6_k_multi
);

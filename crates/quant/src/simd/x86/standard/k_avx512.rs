//! `Q4_K`, `Q5_K` and `Q6_K` weights · `Q8_K` activations, AVX-512
//! (F+BW+VL+VNNI). Same decoding and the same exact integers as `k_avx2`,
//! 64 weights per register: `maddubs` (pairs, no saturation as there), then
//! VNNI `dpwssd` multiplies by the `i16` sub-block scales and accumulates in
//! `i32`. The `f32` steps are the scalar reference's, so the results are
//! bit for bit equal to it.

use super::k_avx2::{kquant, scales_mins, BSUMS, Q4K, Q5K, Q6K};
use super::util::{f16_at, ld16, ld32, ld64};
use std::arch::x86_64::*;

/// A vector of 32 `i16` lanes from an array.
#[target_feature(enable = "avx512f")]
#[inline]
fn i16x32(v: [i16; 32]) -> __m512i {
    // SAFETY: `v` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
}

/// Two 256-bit halves as one vector: `lo` in lanes 0..8, `hi` in 8..16.
#[target_feature(enable = "avx512f")]
#[inline]
fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// The 16 `i32` lanes folded to 8 (wrapping adds, exact for exact sums).
#[target_feature(enable = "avx512f")]
#[inline]
fn fold(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// A decoded `Q4_K`/`Q5_K` super-block: `q[c]` = levels of sub-blocks `2c`
/// (bytes 0..32) and `2c+1` (32..64), `sc[c]` their scales as `i16` lanes
/// (16 + 16), the mins as in `k_avx2`, `d` and `dmin`.
struct DecK {
    q: [__m512i; 4],
    sc: [__m512i; 4],
    mins: __m256i,
    d: f32,
    dmin: f32,
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn k_common(b: &[u8], qs: usize) -> DecK {
    let (sc8, m8) = scales_mins(&b[4..16]);
    let scz = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(0, sc8 as i64)));
    let m4 = _mm256_set1_epi8(0x0F);
    let mut q = [_mm512_setzero_si512(); 4];
    let mut sc = [_mm512_setzero_si512(); 4];
    for c in 0..4 {
        let x = ld32(b, qs + 32 * c);
        let lo = _mm256_and_si256(x, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), m4);
        q[c] = join(lo, hi);
        let idx: [i16; 32] = std::array::from_fn(|i| (2 * c + i / 16) as i16);
        sc[c] = _mm512_permutexvar_epi16(i16x32(idx), scz);
    }
    let m = _mm_set_epi64x(0, m8 as i64);
    DecK {
        q,
        sc,
        mins: _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)),
        d: f16_at(b, 0),
        dmin: f16_at(b, 2),
    }
}

/// ggml-common.h `block_q4_K` (layout in `k_avx2::q4k_decode`).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn q4k_decode(b: &[u8]) -> DecK {
    k_common(b, 16)
}

/// ggml-common.h `block_q5_K`: `Q4_K`'s decoding plus 16 where bit `s`
/// of `qh[l]` is set (sub-block `s`, weight `l`).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn q5k_decode(b: &[u8]) -> DecK {
    let mut k = k_common(b, 48);
    let qh = _mm512_broadcast_i64x4(ld32(b, 16));
    let sixteen = _mm512_set1_epi8(16);
    for (c, q) in k.q.iter_mut().enumerate() {
        let sel = _mm512_mask_blend_epi8(
            0xFFFF_FFFF_0000_0000,
            _mm512_set1_epi8(1 << (2 * c)),
            _mm512_set1_epi8((1u8 << (2 * c + 1)) as i8),
        );
        let set = _mm512_test_epi8_mask(qh, sel);
        *q = _mm512_mask_add_epi8(*q, set, *q, sixteen);
    }
    k
}

/// The lanes of `(isum, msum)` of one `Q8_K` block against a decoded
/// `Q4_K`/`Q5_K` (two accumulators: `vpdpwssd` has a 4+ cycle latency).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn k_row(k: &DecK, a: &[u8]) -> (__m256i, __m256i) {
    let mut acc = [_mm512_setzero_si512(); 2];
    for c in 0..4 {
        let p = _mm512_maddubs_epi16(k.q[c], ld64(a, 4 + 64 * c));
        acc[c % 2] = _mm512_dpwssd_epi32(acc[c % 2], p, k.sc[c]);
    }
    let m = _mm256_madd_epi16(ld32(a, BSUMS), k.mins);
    (fold(_mm512_add_epi32(acc[0], acc[1])), m)
}

/// A decoded `Q6_K` super-block: `q[j]` = levels of weights `64j..64j+64`
/// (`0..=63`), `sc[j]` the scales `4j..4j+4` as `i16` lanes (8 each, one
/// per 16 weights), all 16 scales as `i16` in `all`, and `d`.
struct Dec6 {
    q: [__m512i; 4],
    sc: [__m512i; 4],
    all: __m256i,
    d: f32,
    /// Always 0 (no minimums); lets `Q6_K` share the kernel driver.
    dmin: f32,
}

/// ggml-common.h `block_q6_K` (layout in `k_avx2::q6k_decode`): for half
/// `h`, `ql[64h..64h+64]` holds the low nibbles of weights `128h..+64` and
/// the high nibbles of `128h+64..+64`; `qh[32h..]` bits `2k..2k+2` are the
/// top bits of weights `128h+32k..+32`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn q6k_decode(b: &[u8]) -> Dec6 {
    let m4 = _mm512_set1_epi8(0x0F);
    let m2 = _mm512_set1_epi8(0x30);
    let shl: [i16; 32] = std::array::from_fn(|i| if i < 16 { 4 } else { 2 });
    let shr: [i16; 32] = std::array::from_fn(|i| if i < 16 { 0 } else { 2 });
    let (shl, shr) = (i16x32(shl), i16x32(shr));
    let all = _mm256_cvtepi8_epi16(ld16(b, 192));
    let allz = _mm512_castsi256_si512(all);
    let mut q = [_mm512_setzero_si512(); 4];
    let mut sc = [_mm512_setzero_si512(); 4];
    for h in 0..2 {
        let ql = ld64(b, 64 * h);
        let qh = _mm512_broadcast_i64x4(ld32(b, 128 + 32 * h));
        // Weights 128h..+64 (k = 0, 1): qh bits 0,1 | 2,3 to bits 4,5.
        let hi_a = _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m2);
        q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), hi_a);
        // Weights 128h+64..+64 (k = 2, 3): qh bits 4,5 | 6,7.
        let hi_b = _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m2);
        let lo_b = _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4);
        q[2 * h + 1] = _mm512_or_si512(lo_b, hi_b);
    }
    for (j, s) in sc.iter_mut().enumerate() {
        let idx: [i16; 32] = std::array::from_fn(|i| (4 * j + i / 8) as i16);
        *s = _mm512_permutexvar_epi16(i16x32(idx), allz);
    }
    Dec6 {
        q,
        sc,
        all,
        d: f16_at(b, 208),
        dmin: 0.0,
    }
}

/// The lanes of `Σ_j sc_j·Σ (q−32)·a` of one `Q8_K` block against a
/// decoded `Q6_K` (second vector zero: no minimums).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn q6k_row(k: &Dec6, a: &[u8]) -> (__m256i, __m256i) {
    let mut acc = [_mm512_setzero_si512(); 2];
    for j in 0..4 {
        let p = _mm512_maddubs_epi16(k.q[j], ld64(a, 4 + 64 * j));
        acc[j % 2] = _mm512_dpwssd_epi32(acc[j % 2], p, k.sc[j]);
    }
    let off = _mm256_madd_epi16(ld32(a, BSUMS), k.all);
    let acc = fold(_mm512_add_epi32(acc[0], acc[1]));
    (
        _mm256_sub_epi32(acc, _mm256_slli_epi32::<5>(off)),
        _mm256_setzero_si256(),
    )
}

kquant!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
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
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
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
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Q6K,
    q6k_decode,
    q6k_row,
    false,
    q6k_single,
    q6k_tile,
    q6_k,
    q6_k_multi
);

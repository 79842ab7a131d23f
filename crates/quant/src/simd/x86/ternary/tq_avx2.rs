//! AVX2 dot products of `TQ1_0` and `TQ2_0` with `Q8_K` activations: the
//! scheme of [`super::tq_avx512`] with `vpmaddubsw` for `vpdpbusd`.
//!
//! Codes `t` in {0, 1, 2} (3 for a `TQ2_0` code 3) times activations:
//! `vpmaddubsw(t, q)` pairs are at most 2·3·128 = 768 in magnitude, eight
//! of them per 16-bit lane plus one `-bsum` (at most 16·128) stay far inside
//! i16, so the block sum `Σ (t - 1)·q` is exact; `vpmaddwd` with ones turns
//! the lanes into dwords. ggml's AVX2 kernels (ggml-cpu/arch/x86/quants.c
//! `ggml_vec_dot_tq1_0_q8_K`, `ggml_vec_dot_tq2_0_q8_K`) use the same
//! 16-bit accumulation and `bsums`; the `TQ1_0` trits are decoded as in
//! [`super::tq_avx512`] (`vpmullw` by per-lane powers of 3, `vpmulhuw`).

use super::load::{ld128, ld256, u16_at, u32_at};
use super::{pick, row, whole_blocks};
use std::arch::x86_64::*;

/// Bytes of one `block_q8_K`: f32 scale, 256 i8, 16 i16 sums.
const AB: usize = 4 + 256 + 32;
/// Offset of `bsums` in a `block_q8_K`.
const BSUMS: usize = 4 + 256;
/// Blocks per group.
const GB: usize = 4;

/// `block_tq1_0`: 48 + 4 + 2 bytes.
const TQ1: usize = 54;
/// `block_tq2_0`: 64 + 2 bytes.
const TQ2: usize = 66;

/// Bytes per code vector.
const VB: usize = 32;
/// One weight block decoded: codes of weights 32v..32v+32 in `t[v]`.
type Codes = [__m256i; 8];

/// `TQ2_0`: bits 2l..2l+2 of byte 32h + m are the code of weight
/// 128h + 32l + m.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_tq2(b: &[u8]) -> Codes {
    let m3 = _mm256_set1_epi8(3);
    let mut t = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let q = ld256(b, 32 * h);
        t[4 * h] = _mm256_and_si256(q, m3);
        t[4 * h + 1] = _mm256_and_si256(_mm256_srli_epi16::<2>(q), m3);
        t[4 * h + 2] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m3);
        t[4 * h + 3] = _mm256_and_si256(_mm256_srli_epi16::<6>(q), m3);
    }
    t
}

/// Trits of the bytes of a vector split as `(bytes << 8, bytes & 0xff00)`
/// per 16-bit lane, each lane's bytes multiplied by `3^n` from `m`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn trits((lo8, hi8): (__m256i, __m256i), m: __m256i) -> __m256i {
    let tl = _mm256_mulhi_epu16(_mm256_mullo_epi16(lo8, m), _mm256_set1_epi16(3));
    let th = _mm256_mulhi_epu16(_mm256_mullo_epi16(hi8, m), _mm256_set1_epi16(768));
    let hi_mask = _mm256_set1_epi16(0xff00u16 as i16);
    _mm256_or_si256(tl, _mm256_and_si256(th, hi_mask))
}

/// Split bytes for [`trits`].
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn split(s: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_slli_epi16::<8>(s),
        _mm256_and_si256(s, _mm256_set1_epi16(0xff00u16 as i16)),
    )
}

/// 16-bit lanes: `lo` in the low 128 bits, then `hi[j]` per 4-byte group.
const fn pow3(lo: i16, hi: [i16; 4]) -> [i16; 16] {
    let mut w = [lo; 16];
    let mut i = 8;
    while i < 16 {
        w[i] = hi[(i - 8) / 2];
        i += 1;
    }
    w
}

/// The multipliers of code vectors 5, 6, 7 of [`codes_tq1`].
static POW3: [[i16; 16]; 3] = [pow3(1, [3; 4]), pow3(9, [27; 4]), pow3(81, [1, 3, 9, 27])];

/// A vector from 16 i16.
#[inline]
#[target_feature(enable = "avx2")]
fn ld_i16x16(w: &[i16; 16]) -> __m256i {
    // SAFETY: `w` is 32 readable bytes.
    unsafe { _mm256_loadu_si256(w.as_ptr().cast()) }
}

/// `TQ1_0`: weights 0..160 are trits 0..5 of `qs[0..32]`, 160..240 trits
/// 0..5 of `qs[32..48]`, 240..256 trits 0..4 of `qh[0..4]` (weight
/// `240 + 4n + j` is trit `n` of `qh[j]`).
#[inline]
#[target_feature(enable = "avx2")]
fn codes_tq1(b: &[u8]) -> Codes {
    let s0 = split(ld256(b, 0));
    let q32 = ld128(b, 32);
    let s1 = split(_mm256_broadcastsi128_si256(q32));
    let qh = _mm_set1_epi32(u32_at(b, 48) as i32);
    let s2 = split(_mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(q32),
        qh,
    ));
    let mut t = [_mm256_setzero_si256(); 8];
    let mut p = 1i16;
    for tn in t.iter_mut().take(5) {
        *tn = trits(s0, _mm256_set1_epi16(p));
        p *= 3;
    }
    t[5] = trits(s1, ld_i16x16(&POW3[0]));
    t[6] = trits(s1, ld_i16x16(&POW3[1]));
    t[7] = trits(s2, ld_i16x16(&POW3[2]));
    t
}

/// The exact `Σ (t - 1)·q` of one block, in the 8 dword lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn block_acc(t: &Codes, ab: &[u8]) -> __m256i {
    let ab = &ab[..AB];
    let mut s = _mm256_sub_epi16(_mm256_setzero_si256(), ld256(ab, BSUMS));
    for (v, tv) in t.iter().enumerate() {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(*tv, ld256(ab, 4 + 32 * v)));
    }
    _mm256_madd_epi16(s, _mm256_set1_epi16(1))
}

/// The four totals of four blocks' lane sums.
#[inline]
#[target_feature(enable = "avx2")]
fn totals4(s: [__m256i; 4]) -> __m128i {
    let ab = _mm256_add_epi32(
        _mm256_unpacklo_epi64(s[0], s[1]),
        _mm256_unpackhi_epi64(s[0], s[1]),
    );
    let cd = _mm256_add_epi32(
        _mm256_unpacklo_epi64(s[2], s[3]),
        _mm256_unpackhi_epi64(s[2], s[3]),
    );
    let (abf, cdf) = (_mm256_castsi256_ps(ab), _mm256_castsi256_ps(cd));
    let x = _mm256_add_epi32(
        _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(abf, cdf)),
        _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(abf, cdf)),
    );
    _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x))
}

/// The decoded codes and the f32 scales of a group of [`GB`] weight blocks
/// (`wg`: their bytes; `BB` is the block size, 54 or 66).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn decode<const BB: usize>(wg: &[u8]) -> ([Codes; GB], __m128) {
    let mut codes = [[_mm256_setzero_si256(); 4 * 64 / VB]; GB];
    for (i, c) in codes.iter_mut().enumerate() {
        let b = &wg[i * BB..(i + 1) * BB];
        *c = if BB == TQ1 {
            codes_tq1(b)
        } else {
            codes_tq2(b)
        };
    }
    let mut dh = [0u16; GB];
    for (i, d) in dh.iter_mut().enumerate() {
        *d = u16_at(wg, i * BB + BB - 2);
    }
    // SAFETY: `dh` is 8 readable bytes.
    let dw = _mm_cvtph_ps(unsafe { _mm_loadl_epi64(dh.as_ptr().cast()) });
    (codes, dw)
}

/// The terms `sum * (d_w * d_a)` of the [`GB`] blocks of a group, in row
/// order (`ag`: the group's activation blocks).
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn group_terms(codes: &[Codes; GB], dw: __m128, ag: &[u8]) -> [f32; GB] {
    let ag = &ag[..GB * AB];
    let mut sums = [_mm256_setzero_si256(); GB];
    for (i, s) in sums.iter_mut().enumerate() {
        *s = block_acc(&codes[i], &ag[i * AB..]);
    }
    let tot = _mm_cvtepi32_ps(totals4(sums));
    let da = _mm_setr_ps(
        f32_at(ag, 0),
        f32_at(ag, AB),
        f32_at(ag, 2 * AB),
        f32_at(ag, 3 * AB),
    );
    let mut terms = [0f32; GB];
    // SAFETY: `terms` is 4 writable f32.
    unsafe { _mm_storeu_ps(terms.as_mut_ptr(), _mm_mul_ps(tot, _mm_mul_ps(dw, da))) };
    terms
}

/// Little-endian f32 of `s` at `off`.
#[inline]
fn f32_at(s: &[u8], off: usize) -> f32 {
    f32::from_bits(u32_at(s, off))
}

/// `out[t] = w · a[t]`; `BB` is the weight block size (54 or 66 bytes).
#[target_feature(enable = "avx2,fma,f16c")]
fn multi<const BB: usize>(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
    const ROWS: usize = 8;
    let nb = whole_blocks(w.len(), BB, a_row, AB);
    let ng = nb.div_ceil(GB);
    // the bytes of group g: the last one may be partial, then zero-padded
    // (zero scales make the padding contribute exactly +0)
    let wr = |g: usize| (g * GB * BB, (g + 1) * GB * BB, nb * BB);
    let ar = |g: usize| (g * GB * AB, (g + 1) * GB * AB, nb * AB);
    let mut r0 = 0;
    for chunk in out.chunks_mut(ROWS) {
        let mut acc = [0f32; ROWS];
        for g in 0..ng {
            let mut wb = None;
            let (codes, dw) = decode::<BB>(pick::<{ GB * TQ2 }>(w, wr(g), &mut wb));
            for (t, acc) in acc.iter_mut().enumerate().take(chunk.len()) {
                let mut ab = None;
                let ag = pick::<{ GB * AB }>(row(a, a_row, r0 + t), ar(g), &mut ab);
                // in row order; one round trip through memory per group
                let mut sumf = *acc;
                for x in group_terms(&codes, dw, ag) {
                    sumf += x;
                }
                *acc = sumf;
            }
        }
        chunk.copy_from_slice(&acc[..chunk.len()]);
        r0 += chunk.len();
    }
}

macro_rules! kernels {
    ($dot:ident, $multi:ident, $bb:expr) => {
        pub(super) fn $dot(w: &[u8], a: &[u8]) -> f32 {
            let mut out = [0f32];
            // SAFETY: installed by `apply` only at `Isa::Avx2` or above,
            // which `x86::detected` grants only after run-time detection of
            // AVX2, FMA and F16C.
            unsafe { multi::<{ $bb }>(w, a, a.len(), &mut out) };
            out[0]
        }

        pub(super) fn $multi(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
            // SAFETY: as for the single-row kernel above.
            unsafe { multi::<{ $bb }>(w, a, a_row, out) }
        }
    };
}

kernels!(dot_tq1_0, multi_tq1_0, TQ1);
kernels!(dot_tq2_0, multi_tq2_0, TQ2);

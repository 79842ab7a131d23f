//! AVX-512 (F+BW+VL+VNNI) dot products of `TQ1_0` and `TQ2_0` with `Q8_K`
//! activations (layouts: ggml-common.h `block_tq1_0`, `block_tq2_0`,
//! `block_q8_K`; see `crate::tq1_0`, `crate::tq2_0`).
//!
//! The 256 weights of a block are decoded to unsigned codes `t = w + 1` in
//! {0, 1, 2} (3 for a `TQ2_0` code 3) in the activations' order, four
//! vectors of 64, once per block for all activation rows. Per row,
//! `vpdpbusd(t, q)` sums `t·q` exactly and the block's `bsums` supply the
//! `Σ q` to subtract (`Σ (t - 1)·q`), as ggml's x86 kernels do: they rely on
//! `bsums` being the sums of `qs`, which the `Q8_K` quantizer guarantees.
//! Four blocks' sums are reduced together, converted and scaled as
//! `sum * (d_w * d_a)`, the scalar reference's term for the block, and the
//! terms are added to the row total one by one in row order: the result is
//! the reference's bit for bit.
//!
//! `TQ1_0` packs five trits per byte as the fraction `ceil(v·256/243)`;
//! trit `n` is `((byte·3^n) mod 256)·3 >> 8` (ggml-quants.c
//! `dequantize_row_tq1_0`). Here each byte sits in a 16-bit lane shifted to
//! the high half (`byte << 8`): `vpmullw` by `3^n` keeps exactly
//! `(byte·3^n mod 256) << 8`, and `vpmulhuw` by 3 is `(that·3) >> 8`. The
//! multiplier is a vector, so one instruction serves trits of different
//! `n`, which is what lets the weights come out in activation order.

use super::load::{ld128, ld256, ld512, u16_at, u32_at};
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
const VB: usize = 64;
/// One weight block decoded: codes of weights 64v..64v+64 in `t[v]`.
type Codes = [__m512i; 4];

/// `TQ2_0`: bits 2l..2l+2 of byte 32h + m are the code of weight
/// 128h + 32l + m.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn codes_tq2(b: &[u8]) -> Codes {
    let m3 = _mm512_set1_epi8(3);
    // halves of a vector: shift by 0|2 (weights 32l.., l = 0, 1) or 4|6
    let s01 = _mm512_inserti64x4::<1>(_mm512_set1_epi16(0), _mm256_set1_epi16(2));
    let s23 = _mm512_inserti64x4::<1>(_mm512_set1_epi16(4), _mm256_set1_epi16(6));
    let mut t = [_mm512_setzero_si512(); 4];
    for h in 0..2 {
        let q = _mm512_broadcast_i64x4(ld256(b, 32 * h));
        t[2 * h] = _mm512_and_si512(_mm512_srlv_epi16(q, s01), m3);
        t[2 * h + 1] = _mm512_and_si512(_mm512_srlv_epi16(q, s23), m3);
    }
    t
}

/// Trits of the bytes of `s` (every byte of 16-bit lane `i` shifted by the
/// multiplier `3^n` in lane `i` of `m`): `((byte·3^n) mod 256)·3 >> 8`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn trits(lo8: __m512i, hi8: __m512i, m: __m512i) -> __m512i {
    // low bytes: (q << 8)·3^n keeps (q·3^n mod 256) << 8; ·3 >> 16
    let tl = _mm512_mulhi_epu16(_mm512_mullo_epi16(lo8, m), _mm512_set1_epi16(3));
    // high bytes: the same times 256: (q'·3) in the word, of which the high
    // byte is the trit
    let th = _mm512_mulhi_epu16(_mm512_mullo_epi16(hi8, m), _mm512_set1_epi16(768));
    // tl | (th & 0xff00)
    _mm512_ternarylogic_epi32::<0xec>(th, tl, _mm512_set1_epi16(0xff00u16 as i16))
}

/// 16-bit lanes of `3^n` per 16-byte quarter: `q[i]` for quarter `i`, or
/// per 4-byte group `l[j]` in the last quarter when given.
const fn pow3(q: [i16; 4], l: [i16; 4], last: bool) -> [i16; 32] {
    let mut w = [0i16; 32];
    let mut i = 0;
    while i < 32 {
        w[i] = if last && i >= 24 {
            l[(i - 24) / 2]
        } else {
            q[i / 8]
        };
        i += 1;
    }
    w
}

/// The multipliers of the four code vectors of [`codes_tq1`].
static POW3: [[i16; 32]; 4] = [
    pow3([1, 1, 3, 3], [0; 4], false),
    pow3([9, 9, 27, 27], [0; 4], false),
    pow3([81, 81, 1, 3], [0; 4], false),
    pow3([9, 27, 81, 0], [1, 3, 9, 27], true),
];

/// A vector from 32 i16.
#[inline]
#[target_feature(enable = "avx512f")]
fn ld_i16x32(w: &[i16; 32]) -> __m512i {
    // SAFETY: `w` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(w.as_ptr().cast()) }
}

/// Bytes as `(byte << 8, byte & 0xff00)` per 16-bit lane, for [`trits`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) fn split(s: __m512i) -> (__m512i, __m512i) {
    let hi_mask = _mm512_set1_epi16(0xff00u16 as i16);
    (_mm512_slli_epi16::<8>(s), _mm512_and_si512(s, hi_mask))
}

/// `TQ1_0`: weights 0..160 are trits 0..5 of `qs[0..32]`, 160..240 trits
/// 0..5 of `qs[32..48]`, 240..256 trits 0..4 of `qh[0..4]` (weight
/// `240 + 4n + j` is trit `n` of `qh[j]`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn codes_tq1(b: &[u8]) -> Codes {
    // [qs 0..32 | qs 0..32]: weights 0..64 (n = 0, 1) and 64..128 (2, 3)
    let (l0, h0) = split(_mm512_broadcast_i64x4(ld256(b, 0)));
    // [qs 0..32 | qs 32..48 | qs 32..48]: 128..160 (n = 4), 160..192 (0, 1)
    let q32 = _mm256_broadcastsi128_si256(ld128(b, 32));
    let (l2, h2) = split(_mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(ld256(b, 0)),
        q32,
    ));
    // [qs 32..48 ×3 | qh ×4]: 192..240 (n = 2, 3, 4), 240..256
    let s3 = _mm512_mask_set1_epi32(
        _mm512_broadcast_i32x4(_mm256_castsi256_si128(q32)),
        0xf000,
        u32_at(b, 48) as i32,
    );
    let (l3, h3) = split(s3);
    [
        trits(l0, h0, ld_i16x32(&POW3[0])),
        trits(l0, h0, ld_i16x32(&POW3[1])),
        trits(l2, h2, ld_i16x32(&POW3[2])),
        trits(l3, h3, ld_i16x32(&POW3[3])),
    ]
}

/// The exact `Σ (t - 1)·q` of one block and one activation block (`ab`:
/// at least [`AB`] bytes), in the 16 dword lanes of the result.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn block_acc(t: &Codes, ab: &[u8]) -> __m512i {
    let ab = &ab[..AB];
    // -Σ q from the 16 block sums (pairs, as dwords)
    let bs = _mm256_madd_epi16(ld256(ab, BSUMS), _mm256_set1_epi16(-1));
    let mut acc = _mm512_zextsi256_si512(bs);
    for (v, tv) in t.iter().enumerate() {
        acc = _mm512_dpbusd_epi32(acc, *tv, ld512(ab, 4 + 64 * v));
    }
    acc
}

/// The four totals of four blocks' lane sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn totals4(s: [__m512i; 4]) -> __m128i {
    // per 128-bit lane: [a, a, b, b] and [c, c, d, d]
    let ab = _mm512_add_epi32(
        _mm512_unpacklo_epi64(s[0], s[1]),
        _mm512_unpackhi_epi64(s[0], s[1]),
    );
    let cd = _mm512_add_epi32(
        _mm512_unpacklo_epi64(s[2], s[3]),
        _mm512_unpackhi_epi64(s[2], s[3]),
    );
    let (abf, cdf) = (_mm512_castsi512_ps(ab), _mm512_castsi512_ps(cd));
    // per 128-bit lane: [a, b, c, d]
    let x = _mm512_add_epi32(
        _mm512_castps_si512(_mm512_shuffle_ps::<0b10_00_10_00>(abf, cdf)),
        _mm512_castps_si512(_mm512_shuffle_ps::<0b11_01_11_01>(abf, cdf)),
    );
    let y = _mm256_add_epi32(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64::<1>(x));
    _mm_add_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y))
}

/// The decoded codes and the f32 scales of a group of [`GB`] weight blocks
/// (`wg`: their bytes; `BB` is the block size, 54 or 66).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c")]
fn decode<const BB: usize>(wg: &[u8]) -> ([Codes; GB], __m128) {
    let mut codes = [[_mm512_setzero_si512(); 4 * 64 / VB]; GB];
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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c")]
fn group_terms(codes: &[Codes; GB], dw: __m128, ag: &[u8]) -> [f32; GB] {
    let ag = &ag[..GB * AB];
    let mut sums = [_mm512_setzero_si512(); GB];
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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
            // SAFETY: installed by `apply` only at `Isa::Avx512`, which
            // `x86::detected` grants only after run-time detection of
            // AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
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

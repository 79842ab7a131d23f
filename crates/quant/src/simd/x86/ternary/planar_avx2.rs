//! AVX2 dot products of `Q1_0`, `Q2_0` g64, `Q2_0` g128 / `PQ2_0` and `PTQ1_0` with
//! `Q8_0R` activations: the scheme of [`super::planar_avx512`] (unsigned
//! weight operands `u = w + 1`, `Σ w·q = Σ u·q − Σ q` with `Σ q` from the
//! sums plane, lane-wise scaling, one horizontal sum per row) on groups of
//! 256 weights, eight activation blocks of one 256-bit vector each.
//!
//! Without VNNI: `vpmaddubsw(u, q)` (unsigned `u <= 3` times signed `q`)
//! never saturates (`|pair| <= 2·3·128`), `vpmaddwd` with ones makes dwords
//! of four products, and [`reduce8`] the eight block sums: exact integers.

use super::load::{ld256, u16_at, u32_at, u64_at};
use super::{f16x4, padded, ptq1, row, wb_bytes, wb_scale, wb_weights, G64, PT1, Q1};
use crate::q8_0r;
use std::arch::x86_64::*;

/// Activation blocks per group.
const GB: usize = 8;
/// Quant bytes per group.
const GQ: usize = GB * 32;
/// Bytes of a group in the scales or sums plane.
const GS: usize = GB * 4;
/// The largest group of weight bytes (four g64 blocks).
const GW_MAX: usize = 4 * 18;
/// Activation rows per pass of `vec_dot_multi`.
const ROWS: usize = 8;

/// Weight bytes per group.
const fn group_bytes(f: u8) -> usize {
    GB * 32 / wb_weights(f) * wb_bytes(f)
}

/// `u = 2·bit` for the 32 `Q1_0` weights whose sign bits are `bits` (bit
/// `j` for weight `j`).
#[inline]
#[target_feature(enable = "avx2")]
fn twos32(bits: u32) -> __m256i {
    let b = _mm256_set1_epi32(bits as i32);
    // byte j takes byte j / 8 of the word, then tests bit j % 8
    let idx = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let r = _mm256_and_si256(_mm256_shuffle_epi8(b, idx), bit);
    let set = _mm256_cmpeq_epi8(r, bit);
    _mm256_and_si256(set, _mm256_set1_epi8(2))
}

/// 32 two-bit codes (8 bytes `q`, lowest bits first) as bytes in weight
/// order.
#[inline]
#[target_feature(enable = "avx2")]
fn codes32(q: u64) -> __m256i {
    let b = _mm256_set1_epi64x(q as i64);
    // byte p takes byte p / 4 and keeps the bits of code p % 4: c << 2(p % 4)
    let idx = _mm256_set_epi64x(
        0x0707_0707_0606_0606,
        0x0505_0505_0404_0404,
        0x0303_0303_0202_0202,
        0x0101_0101_0000_0000,
    );
    let keep = _mm256_set1_epi32(0xc030_0c03u32 as i32);
    let m = _mm256_and_si256(_mm256_shuffle_epi8(b, idx), keep);
    // c, 4c, 16c and 64c back to c: the low nibble (c or 4c) and the high
    // nibble (c or 4c again) through one table; a byte >= 0x80 looks up 0,
    // and its low nibble is 0 anyway
    let lut = _mm256_setr_epi8(
        0, 1, 2, 3, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, //
        0, 1, 2, 3, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0,
    );
    let lo = _mm256_shuffle_epi8(lut, m);
    let hi4 = _mm256_and_si256(_mm256_srli_epi16::<4>(m), _mm256_set1_epi8(0x0f));
    _mm256_add_epi8(lo, _mm256_shuffle_epi8(lut, hi4))
}

/// The unsigned operand `u = w + 1` of activation block `k` of the group
/// whose weight bytes start at `wg`.
#[inline]
#[target_feature(enable = "avx2")]
fn operand<const F: u8>(wg: &[u8], k: usize) -> __m256i {
    match F {
        Q1 => twos32(u32_at(wg, 18 * (k / 4) + 2 + 4 * (k % 4))),
        G64 => codes32(u64_at(wg, 18 * (k / 2) + 2 + 8 * (k % 2))),
        PT1 => ptq1::codes32(wg, 28 * (k / 4), k % 4),
        _ => codes32(u64_at(wg, 34 * (k / 4) + 2 + 8 * (k % 4))),
    }
}

/// The weight scale of each of the 8 activation blocks of the group
/// (`Q1_0` / g128: two blocks of four, g64: four of two), as `f32`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn wscales<const F: u8>(wg: &[u8]) -> __m256 {
    // g128 / Q1_0: the two scales of the group, then two more bytes
    // that the shuffle drops
    let (x, idx) = if F == G64 {
        let idx = _mm_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7);
        (f16x4::<F>(wg, 0), idx)
    } else {
        let idx = _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
        (
            u64::from(u16_at(wg, wb_scale(F)))
                | u64::from(u16_at(wg, wb_bytes(F) + wb_scale(F))) << 16,
            idx,
        )
    };
    _mm256_cvtph_ps(_mm_shuffle_epi8(_mm_cvtsi64_si128(x as i64), idx))
}

/// The eight sums of the eight dword vectors of `d` (each at most 1536 in
/// magnitude, so the 16-bit packs on the way never saturate), sum `i` in
/// lane `i`.
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(d: &[__m256i; 8]) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let pair = |x, y| _mm256_madd_epi16(_mm256_packs_epi32(x, y), ones);
    // pairs: per 128-bit lane [i: 2 partials, i+1: 2 partials]
    let x = [
        pair(d[0], d[1]),
        pair(d[2], d[3]),
        pair(d[4], d[5]),
        pair(d[6], d[7]),
    ];
    // per 128-bit lane: sums 0..4 (y0) or 4..8 (y1), the lane's half
    let y0 = pair(x[0], x[1]);
    let y1 = pair(x[2], x[3]);
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(y0, y1),
        _mm256_permute2x128_si256::<0x31>(y0, y1),
    )
}

/// One row, one group: `acc + t · d_w` lane-wise, `t = d_a · Σ w·q` per
/// activation block.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn group_row(
    u: &[__m256i; 8],
    (q, d, s): (&[u8], &[u8], &[u8]),
    dw: __m256,
    acc: __m256,
) -> __m256 {
    let (q, d, s) = (&q[..GQ], &d[..GS], &s[..GS]);
    let ones = _mm256_set1_epi16(1);
    let dots = arr8!(k => _mm256_madd_epi16(_mm256_maddubs_epi16(u[k], ld256(q, 32 * k)), ones));
    let sumi = _mm256_sub_epi32(reduce8(&dots), ld256(s, 0));
    let t = _mm256_mul_ps(_mm256_cvtepi32_ps(sumi), _mm256_castsi256_ps(ld256(d, 0)));
    _mm256_fmadd_ps(t, dw, acc)
}

/// The sum of the eight lanes of `v`.
#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    let x = _mm_add_ss(x, _mm_movehdup_ps(x));
    _mm_cvtss_f32(x)
}

/// The group `g` parts of the planes `p`.
#[inline(always)]
fn at<'a>(p: (&'a [u8], &'a [u8], &'a [u8]), g: usize) -> (&'a [u8], &'a [u8], &'a [u8]) {
    (&p.0[g * GQ..], &p.1[g * GS..], &p.2[g * GS..])
}

/// Geometry of a call: weight bytes per group, whole groups, the
/// activation blocks of a last, partial group and its zero-padded weights
/// (zero scales: the padding contributes exactly 0).
struct Shape {
    gw: usize,
    ng: usize,
    rest: usize,
    wtail: [u8; GW_MAX],
}

/// As the scalar references: the weight blocks that have all their
/// activation blocks in a row of `a_row` bytes.
fn shape<const F: u8>(w: &[u8], a_row: usize) -> Shape {
    let (wb, per) = (wb_bytes(F), wb_weights(F) / 32);
    let nwb = (w.len() / wb).min(a_row / q8_0r::BLOCK / per);
    let nq = nwb * per;
    let (gw, ng) = (group_bytes(F), nq / GB);
    let rest = nq % GB;
    Shape {
        gw,
        ng,
        rest,
        // no copy (a call to `memcpy`) for rows of whole groups
        wtail: if rest > 0 {
            padded::<GW_MAX>(&w[ng * gw..nwb * wb])
        } else {
            [0; GW_MAX]
        },
    }
}

/// The planes of the last, partial group of a row, zero-padded.
fn tail_planes(p: (&[u8], &[u8], &[u8]), ng: usize, rest: usize) -> ([u8; GQ], [u8; GS], [u8; GS]) {
    let (q, d, s) = at(p, ng);
    (
        padded::<GQ>(&q[..32 * rest]),
        padded::<GS>(&d[..4 * rest]),
        padded::<GS>(&s[..4 * rest]),
    )
}

/// `w · a` for one row.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot<const F: u8>(w: &[u8], a: &[u8]) -> f32 {
    let sh = shape::<F>(w, a.len());
    let p = q8_0r::planes(a);
    let mut acc = _mm256_setzero_ps();
    for g in 0..sh.ng + usize::from(sh.rest > 0) {
        // one call site, so that `group_row` is inlined once
        let wg = if g < sh.ng {
            &w[g * sh.gw..]
        } else {
            &sh.wtail[..]
        };
        let u = arr8!(k => operand::<F>(wg, k));
        let dw = wscales::<F>(wg);
        let tail;
        let pg = if g < sh.ng {
            at(p, g)
        } else {
            tail = tail_planes(p, sh.ng, sh.rest);
            (&tail.0[..], &tail.1[..], &tail.2[..])
        };
        acc = group_row(&u, pg, dw, acc);
    }
    hsum(acc)
}

/// `out[t] = w · a[t]` for the rows `a[t * a_row..(t + 1) * a_row]`.
#[target_feature(enable = "avx2,fma,f16c")]
fn multi<const F: u8>(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
    let sh = shape::<F>(w, a_row);
    let mut r0 = 0;
    for tile in out.chunks_mut(ROWS) {
        let n = tile.len();
        let mut p: [(&[u8], &[u8], &[u8]); ROWS] = [(&[], &[], &[]); ROWS];
        for (t, pt) in p[..n].iter_mut().enumerate() {
            *pt = q8_0r::planes(row(a, a_row, r0 + t));
        }
        let mut acc = [_mm256_setzero_ps(); ROWS];
        for g in 0..sh.ng + usize::from(sh.rest > 0) {
            let wg = if g < sh.ng {
                &w[g * sh.gw..]
            } else {
                &sh.wtail[..]
            };
            let u = arr8!(k => operand::<F>(wg, k));
            let dw = wscales::<F>(wg);
            for (pt, acc) in p[..n].iter().zip(&mut acc) {
                let tail;
                let pg = if g < sh.ng {
                    at(*pt, g)
                } else {
                    tail = tail_planes(*pt, sh.ng, sh.rest);
                    (&tail.0[..], &tail.1[..], &tail.2[..])
                };
                *acc = group_row(&u, pg, dw, *acc);
            }
        }
        for (o, acc) in tile.iter_mut().zip(acc) {
            *o = hsum(acc);
        }
        r0 += n;
    }
}

macro_rules! kernels {
    ($dot:ident, $multi:ident, $f:expr) => {
        pub(super) fn $dot(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: installed by `apply` only at `Isa::Avx2` or above,
            // which `x86::detected` grants only after run-time detection of
            // AVX2, FMA and F16C.
            unsafe { dot::<{ $f }>(w, a) }
        }

        pub(super) fn $multi(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
            // SAFETY: as for the single-row kernel above.
            unsafe { multi::<{ $f }>(w, a, a_row, out) }
        }
    };
}

kernels!(dot_q1_0, multi_q1_0, Q1);
kernels!(dot_q2_0, multi_q2_0, G64);
kernels!(dot_g128, multi_g128, super::G128);
kernels!(dot_ptq1_0, multi_ptq1_0, PT1);

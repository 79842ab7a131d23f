//! AVX2 dot products of `Q1_0`, `Q2_0` g64 and `Q2_0` g128 / `PQ2_0` with
//! `Q8_0` activations, bit-exact with the scalar references: the scheme of
//! [`super::q8_0_avx512`] (units, the two lane layouts, the scaling order)
//! without VNNI and mask registers.
//!
//! Per activation block of 32, the weights are 32 signed bytes `w` in
//! {-1, 0, 1, 2} and the activations are taken as unsigned `u = q + 128`
//! (`q ^ 0x80`): `vpmaddubsw(u, w)` never saturates (`|pair| <= 2·255·2`);
//! subtracting `vpmaddubsw(128, w)` (computed with the weights) leaves the
//! pair sums of `q·w`, exact, and `vpmaddwd` with ones makes dwords of them.

use super::load::{ld256, u16_at, u32_at, u64_at};
use super::{padded, row, whole_blocks};
use std::arch::x86_64::*;

/// Weight layouts (the const parameter of the kernels).
const Q1: u8 = 0;
const G64: u8 = 1;
const G128: u8 = 2;

/// Bytes of one `block_q8_0` (f16 scale + 32 i8).
const QB: usize = 34;
/// Activation bytes per unit (128 weights, four activation blocks).
const UA: usize = 4 * QB;
/// Units per group of the single-row path.
const GU: usize = 8;
/// Activation bytes per group.
const GA: usize = GU * UA;
/// Rows per pass of the several-rows path (one per lane); fewer rows than
/// [`ROWS_MIN`] go through the single-row path one by one.
const ROWS: usize = 8;
const ROWS_MIN: usize = 4;

/// Bytes of one weight block.
const fn wb_bytes(f: u8) -> usize {
    if f == G128 {
        34
    } else {
        18
    }
}

/// Weights per weight block.
const fn wb_weights(f: u8) -> usize {
    if f == G64 {
        64
    } else {
        128
    }
}

/// Weight bytes per unit.
const fn unit_bytes(f: u8) -> usize {
    128 / wb_weights(f) * wb_bytes(f)
}

/// The largest unit of weight bytes (two g64 blocks).
const UB_MAX: usize = 36;

/// Signed ±1 weights of one `Q1_0` sub-block: bit `j` of the 32-bit `bits`
/// gives byte `j`: +1 when set, -1 when clear.
#[inline]
#[target_feature(enable = "avx2")]
fn signs32(bits: u32) -> __m256i {
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
    let clear = _mm256_cmpeq_epi8(r, _mm256_setzero_si256());
    // clear: 0xff | 1 = -1; set: 0 | 1 = +1
    _mm256_or_si256(clear, _mm256_set1_epi8(1))
}

/// 32 two-bit codes (8 bytes `q`, lowest bits first) as signed weights
/// `code - 1`, in weight order.
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
    let hi = _mm256_shuffle_epi8(lut, hi4);
    _mm256_sub_epi8(_mm256_add_epi8(lo, hi), _mm256_set1_epi8(1))
}

/// Signed weights of sub-block `k` of the unit whose weight bytes start at
/// `wu`, and `vpmaddubsw(128, w)`, what the bias adds to each pair sum.
#[inline]
#[target_feature(enable = "avx2")]
fn weights<const F: u8>(wu: &[u8], k: usize) -> (__m256i, __m256i) {
    let w = match F {
        Q1 => signs32(u32_at(wu, 2 + 4 * k)),
        G64 => codes32(u64_at(wu, (k / 2) * 18 + 2 + (k % 2) * 8)),
        _ => codes32(u64_at(wu, 2 + 8 * k)),
    };
    (w, _mm256_maddubs_epi16(_mm256_set1_epi8(-128), w))
}

/// `Σ w·q` per dword of one activation block.
#[inline]
#[target_feature(enable = "avx2")]
fn block_dot((w, c): (__m256i, __m256i), q: __m256i) -> __m256i {
    let u = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
    let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(u, w), c);
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// The eight sums of the eight dword vectors of `d` (each at most 8192 in
/// magnitude), sum `i` in lane `i`.
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(d: &[__m256i; 8]) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    let mut x = [_mm256_setzero_si256(); 4];
    for (j, xj) in x.iter_mut().enumerate() {
        *xj = _mm256_madd_epi16(_mm256_packs_epi32(d[2 * j], d[2 * j + 1]), ones);
    }
    let y0 = _mm256_madd_epi16(_mm256_packs_epi32(x[0], x[1]), ones);
    let y1 = _mm256_madd_epi16(_mm256_packs_epi32(x[2], x[3]), ones);
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(y0, y1),
        _mm256_permute2x128_si256::<0x31>(y0, y1),
    )
}

/// One f16 at `s[off..]`, in all lanes as f32.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn f16_splat(s: &[u8], off: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(u16_at(s, off) as i16))
}

/// `v` into `out[..8]`.
#[inline]
#[target_feature(enable = "avx")]
fn store8(out: &mut [f32], v: __m256) {
    let out = &mut out[..8];
    // SAFETY: `out` is 8 writable f32.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) }
}

/// One row, one group of eight units: adds the weight-block terms to
/// `sumf` in row order. `wg` and `ag` hold the group's bytes.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn group_dot<const F: u8>(wg: &[u8], ag: &[u8], sumf: &mut f32) {
    let ub = unit_bytes(F);
    let (wg, ag) = (&wg[..GU * ub], &ag[..GA]);
    let mut t = [_mm256_setzero_ps(); 4];
    for (k, tk) in t.iter_mut().enumerate() {
        let d =
            arr8!(u => block_dot(weights::<F>(&wg[u * ub..], k), ld256(ag, u * UA + k * QB + 2)));
        let d1 = f16x8!(u => u16_at(ag, u * UA + k * QB));
        *tk = _mm256_mul_ps(_mm256_cvtepi32_ps(reduce8(&d)), d1);
    }
    let mut terms = [0f32; 2 * GU];
    if F == G64 {
        let d0a = f16x8!(u => u16_at(wg, u * ub));
        let d0b = f16x8!(u => u16_at(wg, u * ub + 18));
        let a = _mm256_mul_ps(_mm256_add_ps(t[0], t[1]), d0a);
        let b = _mm256_mul_ps(_mm256_add_ps(t[2], t[3]), d0b);
        // weight blocks 2u, 2u + 1 in order
        store8(&mut terms[..8], _mm256_unpacklo_ps(a, b));
        store8(&mut terms[8..], _mm256_unpackhi_ps(a, b));
        for h in [0, 2, 8, 10, 4, 6, 12, 14] {
            *sumf += terms[h];
            *sumf += terms[h + 1];
        }
    } else {
        let d0 = f16x8!(u => u16_at(wg, u * ub));
        let s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[0], t[1]), t[2]), t[3]);
        store8(&mut terms[..8], _mm256_mul_ps(s, d0));
        for x in &terms[..8] {
            *sumf += x;
        }
    }
}

/// Eight rows, one unit: `acc` (lane `r`: row `r`) plus the unit's weight-
/// block terms, added in row order. `wu` holds the unit's weight bytes,
/// `rows[r][off..off + UA]` its activations in row `r`.
#[inline]
#[target_feature(enable = "avx2,f16c")]
fn unit_rows<const F: u8>(wu: &[u8], rows: &[&[u8]; ROWS], off: usize, acc: __m256) -> __m256 {
    let mut t = [_mm256_setzero_ps(); 4];
    for (k, tk) in t.iter_mut().enumerate() {
        let wk = weights::<F>(wu, k);
        let at = off + k * QB;
        let d = arr8!(r => block_dot(wk, ld256(rows[r], at + 2)));
        let d1 = f16x8!(r => u16_at(rows[r], at));
        *tk = _mm256_mul_ps(_mm256_cvtepi32_ps(reduce8(&d)), d1);
    }
    if F == G64 {
        let acc = _mm256_add_ps(
            acc,
            _mm256_mul_ps(_mm256_add_ps(t[0], t[1]), f16_splat(wu, 0)),
        );
        _mm256_add_ps(
            acc,
            _mm256_mul_ps(_mm256_add_ps(t[2], t[3]), f16_splat(wu, 18)),
        )
    } else {
        let s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[0], t[1]), t[2]), t[3]);
        _mm256_add_ps(acc, _mm256_mul_ps(s, f16_splat(wu, 0)))
    }
}

/// `out[t] = w · a[t]` for the rows `a[t * a_row..(t + 1) * a_row]`.
#[target_feature(enable = "avx2,fma,f16c")]
fn multi<const F: u8>(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
    let (wb, ub) = (wb_bytes(F), unit_bytes(F));
    let nwb = whole_blocks(w.len(), wb, a_row, wb_weights(F) / 32 * QB);
    let nq = nwb * wb_weights(F) / 32;
    // whole units, and the activation bytes of a last, partial one
    let (nu, rest) = (nq / 4, nq % 4 * QB);
    // the weights of a partial last unit, zero-padded (zero scales make the
    // padding contribute exactly +0)
    let wtail = padded::<UB_MAX>(&w[nu * ub..nwb * wb]);
    let mut r0 = 0;
    for chunk in out.chunks_mut(ROWS) {
        if chunk.len() >= ROWS_MIN {
            let mut rows: [&[u8]; ROWS] = [&[]; ROWS];
            for (t, r) in rows.iter_mut().enumerate() {
                // missing rows repeat the last one; their lanes are dropped
                *r = row(a, a_row, r0 + t.min(chunk.len() - 1));
            }
            // a partial last unit: zero-padded copies
            let mut bufs = [[0u8; UA]; ROWS];
            let mut prow: [&[u8]; ROWS] = [&[]; ROWS];
            if rest > 0 {
                for ((b, p), r) in bufs.iter_mut().zip(&mut prow).zip(&rows) {
                    b[..rest].copy_from_slice(&r[nu * UA..nu * UA + rest]);
                    *p = &b[..];
                }
            }
            let mut acc = _mm256_setzero_ps();
            for u in 0..nu + usize::from(rest > 0) {
                // one call site, so that it is inlined
                let (wu, rs, off) = if u < nu {
                    (&w[u * ub..], &rows, u * UA)
                } else {
                    (&wtail[..], &prow, 0)
                };
                acc = unit_rows::<F>(wu, rs, off, acc);
            }
            let mut lanes = [0f32; ROWS];
            store8(&mut lanes, acc);
            chunk.copy_from_slice(&lanes[..chunk.len()]);
        } else {
            for (t, o) in chunk.iter_mut().enumerate() {
                let ar = row(a, a_row, r0 + t);
                let mut sumf = 0f32;
                let ng = nu / GU;
                // the last, partial group: zero-padded copies
                let tail = (nu % GU > 0 || rest > 0).then(|| {
                    (
                        padded::<{ GU * UB_MAX }>(&w[ng * GU * ub..nwb * wb]),
                        padded::<GA>(&ar[ng * GA..nq * QB]),
                    )
                });
                for g in 0..ng + usize::from(tail.is_some()) {
                    // one call site, so that it is inlined
                    let (wg, ag) = match &tail {
                        Some((wt, at)) if g == ng => (&wt[..], &at[..]),
                        _ => (&w[g * GU * ub..], &ar[g * GA..]),
                    };
                    group_dot::<F>(wg, ag, &mut sumf);
                }
                *o = sumf;
            }
        }
        r0 += chunk.len();
    }
}

macro_rules! kernels {
    ($dot:ident, $multi:ident, $f:expr) => {
        pub(super) fn $dot(w: &[u8], a: &[u8]) -> f32 {
            let mut out = [0f32];
            // SAFETY: installed by `apply` only at `Isa::Avx2` or above,
            // which `x86::detected` grants only after run-time detection of
            // AVX2, FMA and F16C.
            unsafe { multi::<{ $f }>(w, a, a.len(), &mut out) };
            out[0]
        }

        pub(super) fn $multi(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
            // SAFETY: as for the single-row kernel above.
            unsafe { multi::<{ $f }>(w, a, a_row, out) }
        }
    };
}

kernels!(dot_q1_0, multi_q1_0, Q1);
kernels!(dot_q2_0, multi_q2_0, G64);
kernels!(dot_g128, multi_g128, G128);

//! AVX-512 (F+BW+VL+VNNI) dot products of `Q1_0`, `Q2_0` g64 and `Q2_0`
//! g128 / `PQ2_0` with `Q8_0` activations, bit-exact with the scalar
//! references.
//!
//! Work is cut into *units* of 128 weights: four `block_q8_0` of 32
//! activations (sub-blocks `k` = 0..4), one `Q1_0` or g128 block or two g64
//! blocks. Per activation block (one 256-bit vector):
//!
//! * the weights `w` in {-1, 0, 1, 2} become the unsigned bytes `w + 1`: a
//!   `Q1_0` bit drives a zero-masked move of 2 (bit clear: 0), a 2-bit code
//!   is used as it is (see [`codes64`]);
//! * `vpdpbusd(vpdpbusd(4, w + 1, q), 1, !q)` is
//!   `Σ (w + 1)·q + Σ (-q - 1) + 4 = Σ w·q` exactly in every dword (four
//!   bytes): no `-q` is ever formed, so `q = -128` is fine, and so is the
//!   code-3 weight 2 (`|q·w| <= 256`);
//! * [`reduce8`] turns eight such vectors into one holding their eight
//!   block sums (a block sum is at most 32·256 = 8192 in magnitude, so the
//!   16-bit packs on the way never saturate).
//!
//! One activation row ([`group_dot`]): the eight vectors are sub-block `k`
//! of eight units, so lane `u` ends up with unit `u`. Several rows
//! ([`unit_rows`]): the eight vectors are one block of eight rows, lane `r`
//! is row `r`, and each unit's weights are decoded once for all of them.
//!
//! Either way the scaling is lane-wise and does what ggml-cpu/quants.c
//! `ggml_vec_dot_q1_0_q8_0_generic` / `ggml_vec_dot_q2_0_q8_0_generic` do:
//! `t_k = d_a · sum_k`, `((t_0 + t_1) + t_2) + t_3` (g64: `t_0 + t_1`,
//! `t_2 + t_3`) times `d_w`, and those weight-block terms are added to the
//! row total one by one in row order, so the result is the scalar
//! reference's bit for bit.

use super::load::{ld128, ld256, u16_at, u32_at};
use super::{padded, row, whole_blocks};
use std::arch::x86_64::*;

/// Weight layouts (the const parameter of the kernels).
const Q1: u8 = 0;
const G64: u8 = 1;
const G128: u8 = 2;

/// Bytes of one `block_q8_0` (f16 scale + 32 i8).
const QB: usize = 34;
/// Activation bytes per unit.
const UA: usize = 4 * QB;
/// Units per group of the single-row path.
const GU: usize = 8;
/// Activation bytes per group.
const GA: usize = GU * UA;
/// Rows per pass of the several-rows path (one per lane); fewer rows than
/// [`ROWS_MIN`] go through the single-row path one by one.
const ROWS: usize = 8;
const ROWS_MIN: usize = 4;

/// Bytes of one weight block (`block_q1_0`: 2 + 16, `block_q2_0`: 2 + 16,
/// g128: 2 + 32).
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

/// 64 two-bit codes (16 bytes of `s` at `off`, lowest bits first) as bytes
/// in weight order: byte `p` is `(s[off + p / 4] >> 2 * (p % 4)) & 3`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn codes64(s: &[u8], off: usize) -> __m512i {
    // every 128-bit lane gets all 16 bytes; byte p takes byte p / 4
    let b = _mm512_broadcast_i32x4(ld128(s, off));
    let idx = _mm512_set_epi64(
        0x0f0f_0f0f_0e0e_0e0e,
        0x0d0d_0d0d_0c0c_0c0c,
        0x0b0b_0b0b_0a0a_0a0a,
        0x0909_0909_0808_0808,
        0x0707_0707_0606_0606,
        0x0505_0505_0404_0404,
        0x0303_0303_0202_0202,
        0x0101_0101_0000_0000,
    );
    let r = _mm512_shuffle_epi8(b, idx);
    // word k holds bytes 2k and 2k+1, codes (2k) % 4 and (2k) % 4 + 1 of
    // the same source byte: shift the word by 2·((2k) % 4) for the low byte
    // and 2 more for the high byte, then keep two bits of each
    let x = _mm512_srlv_epi16(r, _mm512_set1_epi32(0x0004_0000));
    let y = _mm512_srlv_epi16(r, _mm512_set1_epi32(0x0006_0002));
    let m = _mm512_mask_blend_epi8(0xaaaa_aaaa_aaaa_aaaa, x, y);
    _mm512_and_si512(m, _mm512_set1_epi8(3))
}

/// The operands `w + 1` of sub-blocks `2kp` and `2kp + 1` of the unit
/// whose weight bytes start at `wu`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn weights2<const F: u8>(wu: &[u8], kp: usize) -> [__m256i; 2] {
    if F == Q1 {
        let two = _mm256_set1_epi8(2);
        let lo = u32_at(wu, 2 + 8 * kp);
        let hi = u32_at(wu, 6 + 8 * kp);
        [
            _mm256_maskz_mov_epi8(lo, two),
            _mm256_maskz_mov_epi8(hi, two),
        ]
    } else {
        // g64: the two sub-blocks are weight block kp; g128: its half kp
        let off = if F == G64 { kp * 18 + 2 } else { 2 + 16 * kp };
        let c = codes64(wu, off);
        [_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64::<1>(c)]
    }
}

/// `Σ w·q` per dword of one activation block, from the operand `wp = w + 1`
/// and the quants `q`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2")]
fn block_dot(wp: __m256i, q: __m256i) -> __m256i {
    let s = _mm256_dpbusd_epi32(_mm256_set1_epi32(4), wp, q);
    let not_q = _mm256_xor_si256(q, _mm256_set1_epi8(-1));
    _mm256_dpbusd_epi32(s, _mm256_set1_epi8(1), not_q)
}

/// The eight sums of the eight dword vectors of `d` (each at most 8192 in
/// magnitude), sum `i` in lane `i`.
#[inline]
#[target_feature(enable = "avx2")]
fn reduce8(d: &[__m256i; 8]) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    // pairs: per 128-bit lane [i: 2 partials, i+1: 2 partials]
    let mut x = [_mm256_setzero_si256(); 4];
    for (j, xj) in x.iter_mut().enumerate() {
        *xj = _mm256_madd_epi16(_mm256_packs_epi32(d[2 * j], d[2 * j + 1]), ones);
    }
    // per 128-bit lane: sums 0..4 (y0) or 4..8 (y1), the lane's half
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

/// One row, one group of eight units: adds the weight-block terms to
/// `sumf` in row order. `wg` and `ag` hold the group's bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c")]
fn group_dot<const F: u8>(wg: &[u8], ag: &[u8], sumf: &mut f32) {
    let ub = unit_bytes(F);
    let (wg, ag) = (&wg[..GU * ub], &ag[..GA]);
    let mut t = [_mm256_setzero_ps(); 4];
    for kp in 0..2 {
        let wp: [[__m256i; 2]; GU] = arr8!(u => weights2::<F>(&wg[u * ub..], kp));
        for (i, tk) in t[2 * kp..2 * kp + 2].iter_mut().enumerate() {
            let k = 2 * kp + i;
            let d = arr8!(u => block_dot(wp[u][i], ld256(ag, u * UA + k * QB + 2)));
            let d1 = f16x8!(u => u16_at(ag, u * UA + k * QB));
            *tk = _mm256_mul_ps(_mm256_cvtepi32_ps(reduce8(&d)), d1);
        }
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

/// `v` into `out[..8]`.
#[inline]
#[target_feature(enable = "avx")]
fn store8(out: &mut [f32], v: __m256) {
    let out = &mut out[..8];
    // SAFETY: `out` is 8 writable f32.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) }
}

/// Eight rows, one unit: `acc` (lane `r`: row `r`) plus the unit's weight-
/// block terms, added in row order. `wu` holds the unit's weight bytes,
/// `rows[r][off..off + UA]` its activations in row `r`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,f16c")]
fn unit_rows<const F: u8>(wu: &[u8], rows: &[&[u8]; ROWS], off: usize, acc: __m256) -> __m256 {
    let mut t = [_mm256_setzero_ps(); 4];
    for kp in 0..2 {
        let wp = weights2::<F>(wu, kp);
        for (i, wpi) in wp.into_iter().enumerate() {
            let at = off + (2 * kp + i) * QB;
            let d = arr8!(r => block_dot(wpi, ld256(rows[r], at + 2)));
            let d1 = f16x8!(r => u16_at(rows[r], at));
            t[2 * kp + i] = _mm256_mul_ps(_mm256_cvtepi32_ps(reduce8(&d)), d1);
        }
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
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
            // SAFETY: installed by `apply` only at `Isa::Avx512`, which
            // `x86::detected` grants only after run-time detection of
            // AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
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

//! AVX-512 (F+BW+VL+VNNI) dot products of `Q1_0`, `Q2_0` g64, `Q2_0`
//! g128 / `PQ2_0` and `PTQ1_0` with `Q8_0R` activations (see
//! [`crate::q8_0r`]; `PTQ1_0`'s digits come from [`super::ptq1`]).
//!
//! Work is cut into *groups* of 512 weights: 16 activation blocks of 32,
//! eight 64-byte *chunks* of quants, one vector of 16 scales and one of 16
//! block sums from the planes. Per chunk `c` the weights become one vector
//! of unsigned bytes `u` with `w = u - 1` for the 2-bit codes (the code
//! itself, see [`codes64`]) and `w = u - 1` with `u = 2·bit` for `Q1_0`
//! (a zero-masked move of the constant 2 under the 64 weight bits), and
//! `vpdpbusd(0, u, q)` gives `Σ u·q` per four bytes, exact (`|u·q| <= 384`).
//! [`reduce16`] makes the 16 block sums `Σ u·q` of the eight chunks, and
//! `Σ w·q = Σ u·q − Σ q` with `Σ q` from the sums plane: the integer sum of
//! every activation block is exact, `q = -128` and the never-written code 3
//! included.
//!
//! Scaling, lane-wise over the 16 blocks of a group: `t = d_a · sumi` (the
//! very `f32` product of ggml's generic kernels), then `acc += t · d_w`
//! (fused), and one horizontal sum per row at the end. The `f32`
//! summation order differs from the scalar reference (which adds the four
//! `t` of a weight block, scales by `d_w` and adds block after block), so
//! results agree with it to a few ulps of `Σ |d_w·d_a·sumi|`, not bit for
//! bit: the sequential order costs a dependent `f32` add per weight block,
//! about a quarter of the time of a 4096-weight row.
//!
//! `vec_dot_multi` decodes each group's weights once for up to eight
//! activation rows and runs every row through the same operations as
//! `vec_dot`, so it equals `vec_dot` row by row bit for bit.

use super::load::{ld128, ld512, u64_at};
use super::{f16x4, padded, ptq1, row, wb_bytes, wb_weights, G64, PT1, Q1};
use crate::q8_0r;
use std::arch::x86_64::*;

/// Activation blocks per group.
const GB: usize = 16;
/// Quant bytes per group.
const GQ: usize = GB * 32;
/// Bytes of a group in the scales or sums plane.
const GS: usize = GB * 4;
/// The largest group of weight bytes (eight g64 blocks).
const GW_MAX: usize = 8 * 18;
/// Activation rows per pass of `vec_dot_multi`.
const ROWS: usize = 8;

/// Weight bytes per group.
const fn group_bytes(f: u8) -> usize {
    GB * 32 / wb_weights(f) * wb_bytes(f)
}

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

/// The unsigned operand `u = w + 1` of chunk `c` (weights `64c..64c + 64`)
/// of the group whose weight bytes start at `wg`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
fn operand<const F: u8>(wg: &[u8], c: usize) -> __m512i {
    match F {
        // block c / 2, its half c % 2: 64 sign bits
        Q1 => _mm512_maskz_mov_epi8(
            u64_at(wg, 18 * (c / 2) + 2 + 8 * (c % 2)),
            _mm512_set1_epi8(2),
        ),
        G64 => codes64(wg, 18 * c + 2),
        PT1 => ptq1::codes64(wg, 28 * (c / 2), c % 2),
        _ => codes64(wg, 34 * (c / 2) + 2 + 16 * (c % 2)),
    }
}

/// The weight scale of each of the 16 activation blocks of the group
/// (`Q1_0` / g128 / `PTQ1_0`: four blocks of four, g64: eight of two), as
/// `f32`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,f16c")]
fn wscales<const F: u8>(wg: &[u8]) -> __m512 {
    let (lo, hi, idx) = if F == G64 {
        let idx = _mm256_setr_epi16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        (f16x4::<F>(wg, 0), f16x4::<F>(wg, 4), idx)
    } else {
        let idx = _mm256_setr_epi16(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        (f16x4::<F>(wg, 0), 0, idx)
    };
    let x = _mm256_castsi128_si256(_mm_set_epi64x(hi as i64, lo as i64));
    _mm512_cvtph_ps(_mm256_permutexvar_epi16(idx, x))
}

/// The 16 block sums of a group, in block order, from the eight chunk
/// vectors of four-byte sums (each at most 1536 in magnitude, so the
/// 16-bit packs on the way never saturate).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn reduce16(d: &[__m512i; 8]) -> __m512i {
    let ones = _mm512_set1_epi16(1);
    let pair = |x, y| _mm512_madd_epi16(_mm512_packs_epi32(x, y), ones);
    // per 128-bit lane L: [d[2j] pairs, d[2j] pairs, d[2j+1] .., d[2j+1] ..]
    let p = [
        pair(d[0], d[1]),
        pair(d[2], d[3]),
        pair(d[4], d[5]),
        pair(d[6], d[7]),
    ];
    // per lane L, dword j: the lane-L total of chunk j (q0) or 4 + j (q1);
    // lane L of chunk c is half L % 2 of block 2c + L / 2
    let q0 = pair(p[0], p[1]);
    let q1 = pair(p[2], p[3]);
    // halves added: lane 0 holds blocks 0, 2, 4, 6, lane 1 blocks 1, 3, 5,
    // 7, lanes 2 and 3 the same of 8..16
    let z = _mm512_add_epi32(
        _mm512_shuffle_i32x4::<0x88>(q0, q1),
        _mm512_shuffle_i32x4::<0xdd>(q0, q1),
    );
    let order = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
    _mm512_permutexvar_epi32(order, z)
}

/// One row, one group: `acc + t · d_w` lane-wise, `t = d_a · Σ w·q` per
/// activation block. `u` are the group's weight operands, `dw` its weight
/// scales; `q`, `d`, `s` start at the group's part of each plane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
fn group_row(
    u: &[__m512i; 8],
    (q, d, s): (&[u8], &[u8], &[u8]),
    dw: __m512,
    acc: __m512,
) -> __m512 {
    let (q, d, s) = (&q[..GQ], &d[..GS], &s[..GS]);
    let z = _mm512_setzero_si512();
    let dots = arr8!(c => _mm512_dpbusd_epi32(z, u[c], ld512(q, 64 * c)));
    let sumi = _mm512_sub_epi32(reduce16(&dots), ld512(s, 0));
    let t = _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), _mm512_castsi512_ps(ld512(d, 0)));
    _mm512_fmadd_ps(t, dw, acc)
}

/// The group `g` parts of the planes `p`.
#[inline(always)]
fn at<'a>(p: (&'a [u8], &'a [u8], &'a [u8]), g: usize) -> (&'a [u8], &'a [u8], &'a [u8]) {
    (&p.0[g * GQ..], &p.1[g * GS..], &p.2[g * GS..])
}

/// Geometry of a call: weight bytes per block and per group, whole groups,
/// and the activation blocks of a last, partial group.
struct Shape {
    gw: usize,
    ng: usize,
    rest: usize,
    /// The last group's weights, zero-padded (zero scales: the padding
    /// contributes exactly 0).
    wtail: [u8; GW_MAX],
}

/// As the scalar references: the weight blocks that have all their
/// activation blocks in a row of `a_row` bytes (the planes are located
/// from the row's length).
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

/// The planes of the last, partial group of a row (`rest` blocks),
/// zero-padded to a whole group.
fn tail_planes(p: (&[u8], &[u8], &[u8]), ng: usize, rest: usize) -> ([u8; GQ], [u8; GS], [u8; GS]) {
    let (q, d, s) = at(p, ng);
    (
        padded::<GQ>(&q[..32 * rest]),
        padded::<GS>(&d[..4 * rest]),
        padded::<GS>(&s[..4 * rest]),
    )
}

/// `w · a` for one row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn dot<const F: u8>(w: &[u8], a: &[u8]) -> f32 {
    let sh = shape::<F>(w, a.len());
    let p = q8_0r::planes(a);
    let mut acc = _mm512_setzero_ps();
    for g in 0..sh.ng + usize::from(sh.rest > 0) {
        // one call site, so that `group_row` is inlined once
        let wg = if g < sh.ng {
            &w[g * sh.gw..]
        } else {
            &sh.wtail[..]
        };
        let u = arr8!(c => operand::<F>(wg, c));
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
    _mm512_reduce_add_ps(acc)
}

/// `out[t] = w · a[t]` for the rows `a[t * a_row..(t + 1) * a_row]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn multi<const F: u8>(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
    let sh = shape::<F>(w, a_row);
    let mut r0 = 0;
    for tile in out.chunks_mut(ROWS) {
        let n = tile.len();
        let mut p: [(&[u8], &[u8], &[u8]); ROWS] = [(&[], &[], &[]); ROWS];
        for (t, pt) in p[..n].iter_mut().enumerate() {
            *pt = q8_0r::planes(row(a, a_row, r0 + t));
        }
        let mut acc = [_mm512_setzero_ps(); ROWS];
        for g in 0..sh.ng + usize::from(sh.rest > 0) {
            let wg = if g < sh.ng {
                &w[g * sh.gw..]
            } else {
                &sh.wtail[..]
            };
            let u = arr8!(c => operand::<F>(wg, c));
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
            *o = _mm512_reduce_add_ps(acc);
        }
        r0 += n;
    }
}

macro_rules! kernels {
    ($dot:ident, $multi:ident, $f:expr) => {
        pub(super) fn $dot(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: installed by `apply` only at `Isa::Avx512`, which
            // `x86::detected` grants only after run-time detection of
            // AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
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

//! AVX-512 (F/BW/VNNI) kernels of packed `Q4_K` and `Q6_K` (layout in
//! [`super::kquant`]) against planar `Q8_K` activations.
//!
//! Per 16 weights of 16 rows: two 64-byte loads of `Q4_K` nibbles or
//! three of `Q6_K` 6-bit codes give 4 chunks of 64 unsigned bytes, each
//! one `vpdpbusd` per token (4 broadcast activations) into the sub-block's
//! `i32` sum of the 16 row lanes. Per sub-block and token the integer scale
//! is then applied exactly (`vpmulld` + `vpaddd`): tried instead, one
//! `vpdpwssd` per 16 `Q4_K` weights (the partial sum fits an `i16`)
//! measured ~10% slower in prefill. `Q6_K`'s code offset 32 costs nothing:
//! each sub-block's sum starts at `−32·Σ a` from the activation row.
//! `Q4_K`'s minimums take one `vpdpwssd` per pair of sub-blocks and token
//! (`i16` pairs `m_2k, m_2k+1` against the pair of 32-value sums). So per
//! super-block the kernels hold ggml's exact integers `isum` and `msum`
//! (ggml-cpu quants.c `ggml_vec_dot_q4_K_q8_K_generic` /
//! `ggml_vec_dot_q6_K_q8_K_generic`); only the `f32` steps after them
//! differ in order and fusing: `acc += da·(d·isum − dmin·msum)`.
//!
//! Integer ranges (activations in −128..=127): a `Q4_K` sub-block sum is
//! at most `32·15·128 = 61440`, `isum` at most `8·63·61440 < 2³¹`, `msum`
//! at most `8·63·4096`; a `Q6_K` sub-block sum `Σ (q − 32)·a` is within
//! `±16·32·128` and `|isum| <= 16·128·65536 = 2²⁷`.
//!
//! Decode (1 token) runs 2 row groups at once for independent dependency
//! chains; prefill runs tiles of up to [`TILE`] tokens per row group, each
//! expanded chunk serving the whole tile.

use super::kquant::{Q4K_CODES, Q4K_WORDS, Q6K_CODES, Q6K_WORDS};
use super::{Kind, PackedMatrix, ROWS};
use core::arch::x86_64::*;

/// Most tokens per prefill tile: each holds `2·TILE` integer sums in
/// registers (12 measured faster than 8; 16 spills).
const TILE: usize = 12;
/// Row groups per decode step (independent dependency chains).
const DECODE_GROUPS: usize = 2;

/// # Safety
/// AVX-512 F/BW/VNNI must be present. `w` holds whole row groups of `m`
/// (a `Q4_K` or `Q6_K` matrix), `acts` at least `n_tokens` rows of `a_row`
/// bytes, each at least `m.act_row_bytes()`, and `band` is
/// `[groups][n_tokens][16]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn matmul(
    m: &PackedMatrix,
    w: &[u64],
    acts: &[u8],
    a_row: usize,
    n_tokens: usize,
    band: &mut [f32],
) {
    // SAFETY: features and bounds are forwarded from the caller.
    unsafe {
        match m.format.kind {
            Kind::Q4K => run::<false>(m.cols, w, acts, a_row, n_tokens, band),
            Kind::Q6K => run::<true>(m.cols, w, acts, a_row, n_tokens, band),
            _ => unreachable!("kquant_avx512 runs Q4_K and Q6_K only"),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn run<const Q6: bool>(
    n: usize,
    w: &[u64],
    acts: &[u8],
    a_row: usize,
    n_tokens: usize,
    band: &mut [f32],
) {
    let bw = if Q6 { Q6K_WORDS } else { Q4K_WORDS };
    let gw = n / 256 * bw;
    let n_groups = w.len() / gw;
    debug_assert_eq!(band.len(), n_groups * n_tokens * ROWS);
    let (wp, ap, op) = (w.as_ptr(), acts.as_ptr(), band.as_mut_ptr());
    // Band floats per group.
    let og = n_tokens * ROWS;
    // SAFETY: (every call below) the caller guarantees the features and
    // that `w`, `acts` and `band` cover `n_groups` groups and `n_tokens`
    // tokens; each call covers groups `g..g + R` and tokens `t..t + T`
    // inside those ranges.
    unsafe {
        if n_tokens == 1 {
            let mut g = 0;
            while g + DECODE_GROUPS <= n_groups {
                let (wg, o) = (wp.add(g * gw), op.add(g * og));
                tile::<Q6, DECODE_GROUPS, 1>(n, wg, gw, ap, a_row, o, og);
                g += DECODE_GROUPS;
            }
            while g < n_groups {
                tile::<Q6, 1, 1>(n, wp.add(g * gw), gw, ap, a_row, op.add(g * og), og);
                g += 1;
            }
            return;
        }
        for g in 0..n_groups {
            let (wg, og_) = (wp.add(g * gw), op.add(g * og));
            let mut t = 0;
            while t < n_tokens {
                // Even tiles: 64 tokens run as 6 tiles of 10-11, not 5 of
                // 12 and a tile of 4.
                let left = n_tokens - t;
                let nt = left.div_ceil(left.div_ceil(TILE));
                let (a, o) = (ap.add(t * a_row), og_.add(t * ROWS));
                macro_rules! by_tokens {
                    ($($k:literal)*) => {
                        match nt {
                            $($k => tile::<Q6, 1, $k>(n, wg, gw, a, a_row, o, og),)*
                            _ => unreachable!("at most TILE tokens"),
                        }
                    };
                }
                by_tokens!(1 2 3 4 5 6 7 8 9 10 11 12);
                t += nt;
            }
        }
    }
}

/// The 4 chunks of 16 weights (byte `4r + k` of chunk `c` = code of
/// weight `4c + k` of row `r`) at `p`: two `Q4_K` double chunks (codes
/// 0..=15) or one `Q6_K` sub-block (codes 0..=63), see [`super::kquant`].
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn expand<const Q6: bool>(p: *const u64) -> [__m512i; 4] {
    // SAFETY: the caller points at 16 (`Q4_K`) or 24 (`Q6_K`) words.
    let v: [__m512i; 3] = core::array::from_fn(|i| unsafe {
        if Q6 || i < 2 {
            _mm512_loadu_si512(p.add(8 * i) as *const __m512i)
        } else {
            _mm512_setzero_si512()
        }
    });
    if !Q6 {
        let m = _mm512_set1_epi8(0x0F);
        let hi = |x| _mm512_and_si512(_mm512_srli_epi16::<4>(x), m);
        return [
            _mm512_and_si512(v[0], m),
            hi(v[0]),
            _mm512_and_si512(v[1], m),
            hi(v[1]),
        ];
    }
    let m = _mm512_set1_epi8(0x3F);
    // Chunk 3: bits 6, 7 of v0, v1, v2 to bits 4-5, 2-3, 0-1. The table
    // 0xE4 is `C ? A : B` over (A, B, C).
    let x = _mm512_srli_epi16::<2>(v[0]);
    let y = _mm512_srli_epi16::<4>(v[1]);
    let z = _mm512_srli_epi16::<6>(v[2]);
    let s = _mm512_ternarylogic_epi32::<0xE4>(x, y, _mm512_set1_epi8(0x30));
    let u = _mm512_ternarylogic_epi32::<0xE4>(s, z, _mm512_set1_epi8(0x3C));
    [
        _mm512_and_si512(v[0], m),
        _mm512_and_si512(v[1], m),
        _mm512_and_si512(v[2], m),
        _mm512_and_si512(u, m),
    ]
}

/// Broadcast of the 4 bytes at `p` (4 int8 quants, 2 `i16` or 1 `i32`).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn bcast(p: *const u8) -> __m512i {
    // SAFETY: the caller points at 4 readable bytes.
    _mm512_set1_epi32(unsafe { (p as *const i32).read_unaligned() })
}

/// `R` row groups (`gw` words apart from `w`) times `T` tokens (`a_row`
/// bytes apart from `a`): writes 16 floats per (group, token) at
/// `o + r·og + t·16`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn tile<const Q6: bool, const R: usize, const T: usize>(
    n: usize,
    w: *const u64,
    gw: usize,
    a: *const u8,
    a_row: usize,
    o: *mut f32,
    og: usize,
) {
    // Words per block, offset of the codes, words per 16 weights,
    // sub-blocks per super-block and 16-weight steps per sub-block.
    let (bw, codes, sw) = if Q6 {
        (Q6K_WORDS, Q6K_CODES, 24)
    } else {
        (Q4K_WORDS, Q4K_CODES, 16)
    };
    let (nsub, steps) = if Q6 { (16, 1) } else { (8, 2) };
    let nsb = n / 256;
    let (d_off, s_off) = (n, n + 4 * nsb);
    // The sums live in the band (`o`), which keeps the registers for the
    // integer sums of the tile.
    for r in 0..R {
        for t in 0..T {
            // SAFETY: `o + r·og + t·16 .. + 16` is inside the band.
            unsafe { _mm512_storeu_ps(o.add(r * og + t * ROWS), _mm512_setzero_ps()) };
        }
    }
    for sb in 0..nsb {
        // SAFETY: (all pointer arithmetic and reads below) block `sb` of
        // each of the `R` groups lies in `w`; token `t`'s quants `..n`,
        // scale `sb` and sums of block `sb` lie in its activation row.
        unsafe {
            let blk: [*const u64; R] = core::array::from_fn(|r| w.add(r * gw + sb * bw));
            let mut isum = [[_mm512_setzero_si512(); T]; R];
            for j in 0..nsub {
                // Q6_K: start at −32·Σ a of the sub-block (the code offset).
                let init = |t: usize| {
                    if Q6 {
                        bcast(a.add(t * a_row + s_off + 4 * (16 * sb + j)))
                    } else {
                        _mm512_setzero_si512()
                    }
                };
                let mut ia: [[__m512i; T]; R] = [core::array::from_fn(init); R];
                for s in j * steps..(j + 1) * steps {
                    let col = sb * 256 + 16 * s;
                    for r in 0..R {
                        let ch = expand::<Q6>(blk[r].add(codes + s * sw));
                        for (c, ch) in ch.iter().enumerate() {
                            for t in 0..T {
                                let q = bcast(a.add(t * a_row + col + 4 * c));
                                ia[r][t] = _mm512_dpbusd_epi32(ia[r][t], *ch, q);
                            }
                        }
                    }
                }
                for r in 0..R {
                    // Q4_K `u8` scales at word 8, Q6_K `i8` at word 4.
                    let sc = if Q6 {
                        _mm512_cvtepi8_epi32(_mm_loadu_si128(
                            (blk[r].add(4) as *const u8).add(16 * j) as *const __m128i,
                        ))
                    } else {
                        _mm512_cvtepu8_epi32(_mm_loadu_si128(
                            (blk[r].add(8) as *const u8).add(16 * j) as *const __m128i,
                        ))
                    };
                    for t in 0..T {
                        isum[r][t] = _mm512_add_epi32(isum[r][t], _mm512_mullo_epi32(ia[r][t], sc));
                    }
                }
            }
            let acc = |r: usize, t: usize| o.add(r * og + t * ROWS);
            let add = |r: usize, t: usize, v: __m512, da: __m512| {
                let x = _mm512_fmadd_ps(v, da, _mm512_loadu_ps(acc(r, t)));
                _mm512_storeu_ps(acc(r, t), x);
            };
            let da = |t: usize| {
                _mm512_set1_ps((a.add(t * a_row + d_off + 4 * sb) as *const f32).read_unaligned())
            };
            for r in 0..R {
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(blk[r] as *const __m256i));
                if Q6 {
                    for t in 0..T {
                        add(
                            r,
                            t,
                            _mm512_mul_ps(_mm512_cvtepi32_ps(isum[r][t]), d),
                            da(t),
                        );
                    }
                    continue;
                }
                // Q4_K: msum = Σ_j m_j·Σ_32 a by pairs of sub-blocks.
                let dm = _mm512_cvtph_ps(_mm256_loadu_si256(blk[r].add(4) as *const __m256i));
                let mp: [__m512i; 4] = core::array::from_fn(|k| {
                    let at = (blk[r].add(24) as *const u8).add(32 * k);
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256(at as *const __m256i))
                });
                for t in 0..T {
                    let mut msum = _mm512_setzero_si512();
                    for (k, mp) in mp.iter().enumerate() {
                        let sums = bcast(a.add(t * a_row + s_off + 2 * (8 * sb + 2 * k)));
                        msum = _mm512_dpwssd_epi32(msum, *mp, sums);
                    }
                    let v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[r][t]), d);
                    add(
                        r,
                        t,
                        _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), dm, v),
                        da(t),
                    );
                }
            }
        }
    }
}

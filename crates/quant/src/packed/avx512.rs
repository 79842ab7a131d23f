//! AVX-512 (F/BW/VNNI) kernels of the packed layout ([`super`]).
//!
//! Per chunk of 16 rows × 4 weights: [`expand`] makes 64 unsigned weight
//! bytes (sign 0/1, code 0..=3, `Q5_0` 0..=31, `Q8_0` `q + 128`), and one
//! `vpdpbusd` per token adds `byte · q` of 4 activations (broadcast,
//! signed) into the 16 row lanes. One row group and `T` tokens run at
//! once: decode (`T = 1`) splits each lane's sum over two accumulators to
//! break the dependency chain, prefill reuses each expanded vector for `T`
//! tokens. One row group at a time (a single sequential weight stream per
//! thread) measured 1.2-1.4x faster decode than 2 or 4 on 8B Q1_0 / Q2_0 /
//! TQ2_0 and the real model (Zen 4, 2 threads).

use super::{Kind, PackedMatrix, ROWS};
use core::arch::x86_64::*;

/// Tokens per prefill tile.
const TILE: usize = 8;

/// # Safety
/// AVX-512 F/BW/VNNI must be present. `w` holds whole row groups of `m`,
/// `acts` at least `n_tokens` rows of `a_row` bytes, each at least
/// `m.format.act_row_bytes(m.cols)`, and `band` is `[groups][n_tokens][16]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn matmul(
    m: &PackedMatrix,
    w: &[u64],
    acts: &[u8],
    a_row: usize,
    n_tokens: usize,
    band: &mut [f32],
) {
    let f = m.format;
    // SAFETY: features and bounds are forwarded from the caller.
    unsafe {
        // K: words per chunk, which also tells the kinds apart.
        let k = match f.kind {
            Kind::Ternary { planes } => planes,
            Kind::Q5_0 => 5,
            Kind::Q8_0 => 8,
            Kind::Q4K | Kind::Q6K => unreachable!("run by kquant_avx512"),
            Kind::Trit => unreachable!("run by trit_avx512"),
        };
        match (k, f.group, f.act_block) {
            (1, 128, 32) => run::<1, 128, 32>(m, w, acts, a_row, n_tokens, band),
            (2, 64, 32) => run::<2, 64, 32>(m, w, acts, a_row, n_tokens, band),
            (2, 128, 32) => run::<2, 128, 32>(m, w, acts, a_row, n_tokens, band),
            (2, 256, 256) => run::<2, 256, 256>(m, w, acts, a_row, n_tokens, band),
            (5, 32, 32) => run::<5, 32, 32>(m, w, acts, a_row, n_tokens, band),
            (8, 32, 32) => run::<8, 32, 32>(m, w, acts, a_row, n_tokens, band),
            _ => unreachable!("PackFormat::of has no other shapes"),
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn run<const K: usize, const G: usize, const S: usize>(
    m: &PackedMatrix,
    w: &[u64],
    acts: &[u8],
    a_row: usize,
    n_tokens: usize,
    band: &mut [f32],
) {
    let n = m.cols;
    let gw = n / G * m.format.block_words();
    let n_groups = w.len() / gw;
    debug_assert_eq!(band.len(), n_groups * n_tokens * ROWS);
    let wp = w.as_ptr();
    let ap = acts.as_ptr();
    let op = band.as_mut_ptr();
    // Band floats per group.
    let og = n_tokens * ROWS;
    // SAFETY: the caller guarantees the features and that `w`, `acts` and
    // `band` cover `n_groups` groups and `n_tokens` tokens; each call
    // covers group `g`.
    unsafe {
        for g in 0..n_groups {
            group::<K, G, S>(n, wp.add(g * gw), ap, a_row, n_tokens, op.add(g * og));
        }
    }
}

/// One row group (packed blocks from `wg`) times `n_tokens` tokens (`a_row` bytes apart
/// from `a`), in tiles of up to [`TILE`] tokens: 16 floats per token from
/// `o`. Decode is the one-token tile.
///
/// # Safety
/// AVX-512 F/BW/VNNI must be present; `wg` holds the group's `n / G`
/// blocks, `a` `n_tokens` planar activation rows of `n` values, `o`
/// `16·n_tokens` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn group<const K: usize, const G: usize, const S: usize>(
    n: usize,
    wg: *const u64,
    a: *const u8,
    a_row: usize,
    n_tokens: usize,
    o: *mut f32,
) {
    let mut t = 0;
    // SAFETY: (every call) tokens `t..t + nt` of the caller's ranges.
    unsafe {
        while t < n_tokens {
            let nt = TILE.min(n_tokens - t);
            let (a, o) = (a.add(t * a_row), o.add(t * ROWS));
            match nt {
                8 => tile::<K, G, S, 8>(n, wg, a, a_row, o),
                7 => tile::<K, G, S, 7>(n, wg, a, a_row, o),
                6 => tile::<K, G, S, 6>(n, wg, a, a_row, o),
                5 => tile::<K, G, S, 5>(n, wg, a, a_row, o),
                4 => tile::<K, G, S, 4>(n, wg, a, a_row, o),
                3 => tile::<K, G, S, 3>(n, wg, a, a_row, o),
                2 => tile::<K, G, S, 2>(n, wg, a, a_row, o),
                _ => tile::<K, G, S, 1>(n, wg, a, a_row, o),
            }
            t += nt;
        }
    }
}

/// The 64 unsigned weight bytes of chunk `c` (16 rows × 4 weights) of the
/// block whose chunk words start at `p`: signs (`K` = 1: 0/1, bit `c % 8`
/// of each byte of the 8 words of chunks `8·(c / 8)..`), 2-bit codes (2: 0..=3, two bits `2·(c % 4)` of each byte of
/// the 8 words of chunks `4·(c / 4)..`), `Q5_0` nibbles + fifth bits (5:
/// 0..=31), `Q8_0` bytes (8: `q + 128`).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn expand<const K: usize>(p: *const u64, c: usize) -> __m512i {
    // SAFETY: (all reads) the caller points at the block's chunk words.
    unsafe {
        match K {
            1 => {
                // Measured ~20% faster in decode than a byte-mask layout
                // expanded with `kmov` + a zero-masked move.
                let v = _mm512_loadu_si512(p.add(c / 8 * 8) as *const __m512i);
                let v = match c % 8 {
                    0 => v,
                    1 => _mm512_srli_epi16::<1>(v),
                    2 => _mm512_srli_epi16::<2>(v),
                    3 => _mm512_srli_epi16::<3>(v),
                    4 => _mm512_srli_epi16::<4>(v),
                    5 => _mm512_srli_epi16::<5>(v),
                    6 => _mm512_srli_epi16::<6>(v),
                    _ => _mm512_srli_epi16::<7>(v),
                };
                _mm512_and_si512(v, _mm512_set1_epi8(1))
            }
            2 => {
                let v = _mm512_loadu_si512(p.add(c / 4 * 8) as *const __m512i);
                // 16-bit shifts: the bits they move across bytes are masked.
                let v = match c % 4 {
                    0 => v,
                    1 => _mm512_srli_epi16::<2>(v),
                    2 => _mm512_srli_epi16::<4>(v),
                    _ => _mm512_srli_epi16::<6>(v),
                };
                _mm512_and_si512(v, _mm512_set1_epi8(3))
            }
            5 => {
                let p = p.add(c * K);
                // Low nibbles feed bytes 0..32, high nibbles bytes 32..64.
                let nib = _mm512_broadcast_i64x4(_mm256_loadu_si256(p as *const __m256i));
                let shift = _mm512_inserti64x4::<1>(_mm512_setzero_si512(), _mm256_set1_epi16(4));
                let v = _mm512_and_si512(_mm512_srlv_epi16(nib, shift), _mm512_set1_epi8(0x0F));
                _mm512_mask_add_epi8(v, p.add(4).read(), v, _mm512_set1_epi8(16))
            }
            _ => _mm512_loadu_si512(p.add(c * K) as *const __m512i),
        }
    }
}

/// One row group (from `w`) times `T` tokens (`a_row` bytes apart from
/// `a`): writes 16 floats per token at `o + t·16`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile<const K: usize, const G: usize, const S: usize, const T: usize>(
    n: usize,
    w: *const u64,
    a: *const u8,
    a_row: usize,
    o: *mut f32,
) {
    // The sign kind relies on the group offset terms (`G > S`).
    const { assert!(K != 1 || G > S) };
    let bw = 4 + G / 4 * K;
    let nba = n / S;
    let (d_off, s_off, c_off) = (n, n + 4 * nba, n + 8 * nba);
    let mut acc = [_mm512_setzero_ps(); T];
    for g in 0..n / G {
        let mut fs = [_mm512_setzero_ps(); T];
        if G > S {
            // Several activation blocks per weight scale: the `−Σ q` term
            // is the same in every lane and row, so `quantize_act` summed
            // it per weight group (halved for signs); starting the float
            // sum from it leaves a convert and an FMA per block below.
            for (t, fs) in fs.iter_mut().enumerate() {
                // SAFETY: offset term `g` of token `t`.
                let c =
                    unsafe { (a.add(t * a_row + c_off + 4 * g) as *const f32).read_unaligned() };
                *fs = _mm512_set1_ps(c);
            }
        }
        // Activation blocks inside this weight group (G is a multiple of S).
        for s in 0..G / S {
            let ab = g * (G / S) + s;
            // Two accumulators (even / odd chunks) when few tokens share a
            // chunk: one chain of `vpdpbusd` per lane would wait on its
            // latency (decode is latency-bound with a single chain).
            let mut ia = [_mm512_setzero_si512(); T];
            let mut ib = [_mm512_setzero_si512(); T];
            // Chunks in eights, so that `c % 2`, `c % 4`, `c % 8` are constants.
            for c8 in (0..S / 4).step_by(8) {
                for c in c8..c8 + 8 {
                    let col = g * G + s * S + 4 * c;
                    // SAFETY: chunk `s·S/4 + c` of block `g`.
                    let wv = unsafe { expand::<K>(w.add(g * bw + 4), s * S / 4 + c) };
                    let acc_c = if T < 4 && c % 2 == 1 {
                        &mut ib
                    } else {
                        &mut ia
                    };
                    for (t, ia) in acc_c.iter_mut().enumerate() {
                        // SAFETY: `col + 4 <= n` lies in token `t`'s quants.
                        let q = _mm512_set1_epi32(unsafe {
                            (a.add(t * a_row + col) as *const i32).read_unaligned()
                        });
                        *ia = _mm512_dpbusd_epi32(*ia, wv, q);
                    }
                }
            }
            for t in 0..T {
                let ia = if T < 4 {
                    _mm512_add_epi32(ia[t], ib[t])
                } else {
                    ia[t]
                };
                // SAFETY: scale of block `ab` of token `t`.
                let da =
                    unsafe { (a.add(t * a_row + d_off + 4 * ab) as *const f32).read_unaligned() };
                let da = _mm512_set1_ps(da);
                let v = if G > S {
                    // The offset is in `fs` already.
                    _mm512_cvtepi32_ps(ia)
                } else {
                    // SAFETY: sum of block `ab` of token `t`.
                    let sq = unsafe {
                        (a.add(t * a_row + s_off + 4 * ab) as *const i32).read_unaligned()
                    };
                    // The offset of the unsigned weight bytes, times Σ q.
                    let sq = match K {
                        5 => sq * 16,
                        8 => sq * 128,
                        _ => sq,
                    };
                    _mm512_cvtepi32_ps(_mm512_sub_epi32(ia, _mm512_set1_epi32(sq)))
                };
                fs[t] = _mm512_fmadd_ps(v, da, fs[t]);
            }
        }
        // SAFETY: the 16 f16 scales of block `g`.
        let dw = _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(w.add(g * bw) as *const __m256i) });
        // Sign bits: Σ (2·bit − 1)·q·d = 2·(Σ bit·q·d − ½·Σ q·d).
        let dw = if K == 1 { _mm512_add_ps(dw, dw) } else { dw };
        for t in 0..T {
            acc[t] = _mm512_fmadd_ps(fs[t], dw, acc[t]);
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        // SAFETY: `o + t·16 .. + 16` is inside the band.
        unsafe { _mm512_storeu_ps(o.add(t * ROWS), *acc) };
    }
}

//! AVX2 (+FMA, F16C) kernels of the packed layout ([`super`]), for CPUs
//! without AVX-512 VNNI: the same layout and the same sums as
//! [`super::avx512`], at half the width.
//!
//! A 16-row group is two halves of 8 rows: bytes `0..32` and `32..64` of a
//! chunk's 64 expanded bytes, which for the bit planes are the low and high
//! 32 bits of each plane word. Per half and chunk the weights expand to 32
//! unsigned bytes (byte `4r + k` = weight `4c + k` of row `r` of the half),
//! `vpmaddubsw` with the chunk's 4 activations (broadcast) gives two `i16`
//! per row, and `vpmaddwd` with ones sums them into the row's `i32` lane.
//!
//! Why `i16` sums: without VNNI, widening every product (`vpmaddwd`, then
//! an `i32` add) would cost three operations per token and half-chunk
//! instead of two, so the `vpmaddubsw` pairs of up to [`segment`] chunks are
//! added as `i16` first (exact: the bound is checked below) and widened
//! once. `Q8_0`'s bytes `q + 128` (up to 255) would saturate `vpmaddubsw`
//! (255·128·2 > 32767); there the kernel uses the signed weight `q` with
//! ggml's `|q|` × `sign(a, q)` trick and needs no `−128·Σa` correction.
//!
//! Each half-group runs a whole activation block at a time (its `i16` sums
//! for `T` tokens stay in registers), so a prefill tile of 8 tokens fits the
//! 16 `ymm` registers; decode is the one-token tile. One row group at a time
//! (one sequential weight stream per thread) measured 1.05-1.25x faster
//! than 2 on 8B Q1_0 / Q2_0 generation in the engine (2 threads), although
//! 1, 2 and 4 tie in the one-thread `packed_speed` timing.

use super::{Kind, PackedMatrix, ROWS};
use core::arch::x86_64::*;

/// Tokens per prefill tile: 8 `i16` sums, the expanded weights, one
/// broadcast and the constants fill the 16 `ymm` registers (measured with
/// `packed_speed`: 8 beat 6 by ~10–25% and 4 by ~40%).
const TILE: usize = 8;

/// # Safety
/// AVX2, FMA and F16C must be present. `w` holds whole row groups of `m`,
/// `acts` at least `n_tokens` rows of `a_row` bytes, each at least
/// `m.format.act_row_bytes(m.cols)`, and `band` is `[groups][n_tokens][16]`.
/// For `Q8_0` the activation quants must lie in `−127..=127`, as every
/// `Q8_0` quantizer writes them (`d = amax / 127`); a `−128` against a
/// negative weight would come out with the wrong sign (as in ggml).
#[target_feature(enable = "avx2,fma,f16c")]
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
            // Other kinds have AVX-512 kernels only (`has_kernels`).
            #[allow(unreachable_patterns)]
            _ => unreachable!("no AVX2 kernel for {:?}", f.kind),
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

/// Chunks whose `vpmaddubsw` results may be summed as `i16` before
/// widening, for `K` words per chunk and activation blocks of `S`. A pair
/// sum is at most `2 · wmax · 128` in magnitude (`|a| ≤ 128`), so
/// `segment · 2 · wmax · 128 ≤ 32767`: `wmax` = 1 allows 127 chunks, 3
/// allows 42, 31 allows 4. `Q8_0` (`K` = 8) widens every chunk.
const fn segment(k: usize, s: usize) -> usize {
    let chunks = s / 4;
    let most = match k {
        1 => 127,
        2 => 32,
        5 => 4,
        _ => 1,
    };
    if chunks < most {
        chunks
    } else {
        most
    }
}

// The bound above, for every shape `matmul` dispatches.
const _: () = {
    let shapes = [(1, 1, 32), (2, 3, 32), (2, 3, 256), (5, 31, 32)];
    let mut i = 0;
    while i < shapes.len() {
        let (k, wmax, s) = shapes[i];
        assert!(segment(k, s) * 2 * wmax * 128 <= i16::MAX as usize);
        assert!((s / 4) % segment(k, s) == 0);
        i += 1;
    }
};

#[target_feature(enable = "avx2,fma,f16c")]
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
    // SAFETY: (every call below) the caller guarantees the features and
    // that `w`, `acts` and `band` cover `n_groups` groups and `n_tokens`
    // tokens; each call covers group `g` and tokens `t..t + nt` inside
    // those ranges.
    unsafe {
        for g in 0..n_groups {
            let (wg, og_) = (wp.add(g * gw), op.add(g * og));
            let mut t = 0;
            while t < n_tokens {
                let nt = TILE.min(n_tokens - t);
                let (a, o) = (ap.add(t * a_row), og_.add(t * ROWS));
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
}

/// Bit `i` of the 32-bit half `h` of the plane word at `p`, in byte `i`:
/// 0 or `1 << (i % 8)`. `vpshufb` copies source byte `i / 8` into byte `i`
/// (each 128-bit lane holds all 4 bytes after the broadcast) and the AND
/// keeps bit `i % 8`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits(p: *const u64, h: usize) -> __m256i {
    // SAFETY: the caller points at a plane word; `h` < 2 picks its half.
    let x = _mm256_set1_epi32(unsafe { (p as *const i32).add(h).read_unaligned() });
    #[rustfmt::skip]
    let rep = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    _mm256_and_si256(_mm256_shuffle_epi8(x, rep), select())
}

/// `1 << (i % 8)` in byte `i`: the bit [`bits`] keeps.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn select() -> __m256i {
    _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64)
}

/// `v` at the bytes where [`bits`] found a set bit, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn bits_to(b: __m256i, v: i8) -> __m256i {
    _mm256_and_si256(_mm256_cmpeq_epi8(b, select()), _mm256_set1_epi8(v))
}

/// The 32 unsigned weight bytes of half `h` of chunk `c` (8 rows × 4
/// weights) of the block whose chunk words start at `wb`: signs (`K` = 1:
/// 0/1, bit `c % 8` of the bytes of the 8 words of chunks `8·(c / 8)..`),
/// 2-bit codes (2: bits `2·(c % 4)` of the bytes of the 8 words of
/// chunks `4·(c / 4)..`), `Q5_0` nibbles + fifth bits (5: 0..=31). For
/// `Q8_0` (8) the *signed* quants `q` (the stored `q + 128`, flipped back).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn expand<const K: usize>(wb: *const u64, c: usize, h: usize) -> __m256i {
    // SAFETY: (all reads) the caller points at the block's chunk words.
    unsafe {
        if K == 1 {
            let v = _mm256_loadu_si256(wb.add(c / 8 * 8 + 4 * h) as *const __m256i);
            let v = match c % 8 {
                0 => v,
                1 => _mm256_srli_epi16::<1>(v),
                2 => _mm256_srli_epi16::<2>(v),
                3 => _mm256_srli_epi16::<3>(v),
                4 => _mm256_srli_epi16::<4>(v),
                5 => _mm256_srli_epi16::<5>(v),
                6 => _mm256_srli_epi16::<6>(v),
                _ => _mm256_srli_epi16::<7>(v),
            };
            return _mm256_and_si256(v, _mm256_set1_epi8(1));
        }
        if K == 2 {
            let v = _mm256_loadu_si256(wb.add(c / 4 * 8 + 4 * h) as *const __m256i);
            // 16-bit shifts: the bits they move across bytes are masked.
            let v = match c % 4 {
                0 => v,
                1 => _mm256_srli_epi16::<2>(v),
                2 => _mm256_srli_epi16::<4>(v),
                _ => _mm256_srli_epi16::<6>(v),
            };
            return _mm256_and_si256(v, _mm256_set1_epi8(3));
        }
        let p = wb.add(c * K);
        match K {
            5 => {
                // Low nibbles feed bytes 0..32 (half 0), high nibbles 32..64.
                let nib = _mm256_loadu_si256(p as *const __m256i);
                let nib = if h == 0 {
                    nib
                } else {
                    _mm256_srli_epi16::<4>(nib)
                };
                let nib = _mm256_and_si256(nib, _mm256_set1_epi8(0x0F));
                _mm256_or_si256(nib, bits_to(bits(p.add(4), h), 16))
            }
            _ => _mm256_xor_si256(
                _mm256_loadu_si256(p.add(4 * h) as *const __m256i),
                _mm256_set1_epi8(-128),
            ),
        }
    }
}

/// The 4 activation quants of token `t` at `a + t·a_row`, in every `i32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn act4(a: *const u8, t: usize, a_row: usize) -> __m256i {
    // SAFETY: the caller points `a` at 4 quants of token 0's row.
    _mm256_set1_epi32(unsafe { (a.add(t * a_row) as *const i32).read_unaligned() })
}

/// The exact integer sums `Σ weight byte · a` of half `h` of one
/// activation block (`S / 4` chunks from `wb`) for `T` tokens (quants from
/// `a`, `a_row` bytes apart), one `i32` per row: doubled for `K` = 1 (the
/// `2·Σ bit·a` of `(2·bit − 1)`), `Σ q·a` for `Q8_0`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_dot<const K: usize, const S: usize, const T: usize>(
    wb: *const u64,
    h: usize,
    a: *const u8,
    a_row: usize,
) -> [__m256i; T] {
    let mut sum = [_mm256_setzero_si256(); T];
    let ones = _mm256_set1_epi16(1);
    // SAFETY: (all reads) chunk `c < S / 4` of the block at `wb` and quants
    // `4c..4c + 4` of each token's block at `a`.
    unsafe {
        if K == 8 {
            for c in 0..S / 4 {
                let q = expand::<K>(wb, c, h);
                let mag = _mm256_abs_epi8(q);
                for (t, sum) in sum.iter_mut().enumerate() {
                    // |q| · (sign(q)·a) = q·a; |q| ≤ 128 and |a| ≤ 127 keep
                    // each pair within 2·128·127 < 32768.
                    let a = _mm256_sign_epi8(act4(a.add(4 * c), t, a_row), q);
                    let p = _mm256_maddubs_epi16(mag, a);
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(p, ones));
                }
            }
            return sum;
        }
        let seg = segment(K, S);
        let widen = _mm256_set1_epi16(if K == 1 { 2 } else { 1 });
        for c0 in (0..S / 4).step_by(seg) {
            let mut s16 = [_mm256_setzero_si256(); T];
            for c in c0..c0 + seg {
                let wv = expand::<K>(wb, c, h);
                for (t, s16) in s16.iter_mut().enumerate() {
                    let p = _mm256_maddubs_epi16(wv, act4(a.add(4 * c), t, a_row));
                    *s16 = _mm256_add_epi16(*s16, p);
                }
            }
            for (sum, s16) in sum.iter_mut().zip(s16) {
                *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(s16, widen));
            }
        }
    }
    sum
}

/// One row group (from `w`) times `T` tokens (`a_row` bytes apart from
/// `a`): writes 16 floats per token at `o + t·16`. Not inlined: each shape
/// gets its own register allocation (measured no slower, and `run` stays
/// small).
#[inline(never)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const K: usize, const G: usize, const S: usize, const T: usize>(
    n: usize,
    w: *const u64,
    a: *const u8,
    a_row: usize,
    o: *mut f32,
) {
    let bw = 4 + G / 4 * K;
    let nba = n / S;
    let (d_off, s_off) = (n, n + 4 * nba);
    let mut acc = [[_mm256_setzero_ps(); T]; 2];
    for g in 0..n / G {
        let mut fs = [[_mm256_setzero_ps(); T]; 2];
        // Activation blocks inside this weight group (G is a multiple of S).
        for s in 0..G / S {
            let ab = g * (G / S) + s;
            let col = g * G + s * S;
            for (h, fs) in fs.iter_mut().enumerate() {
                // SAFETY: the block's chunks and the block's quants of the
                // `T` tokens.
                let dot = unsafe {
                    block_dot::<K, S, T>(w.add(g * bw + 4 + s * S / 4 * K), h, a.add(col), a_row)
                };
                for (t, (fs, dot)) in fs.iter_mut().zip(dot).enumerate() {
                    // SAFETY: scale and sum of block `ab` of token `t`.
                    let (da, sq) = unsafe {
                        let row = a.add(t * a_row);
                        (
                            (row.add(d_off + 4 * ab) as *const f32).read_unaligned(),
                            (row.add(s_off + 4 * ab) as *const i32).read_unaligned(),
                        )
                    };
                    // The offset of the unsigned weight bytes, times Σ a
                    // (`Q8_0`'s sums are of the signed quants already).
                    let sq = match K {
                        5 => sq * 16,
                        8 => 0,
                        _ => sq,
                    };
                    let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(dot, _mm256_set1_epi32(sq)));
                    *fs = _mm256_fmadd_ps(v, _mm256_set1_ps(da), *fs);
                }
            }
        }
        for (h, (acc, fs)) in acc.iter_mut().zip(&fs).enumerate() {
            // SAFETY: the 8 f16 scales of half `h` of block `g` (words
            // `2h..2h + 2`).
            let dw = _mm256_cvtph_ps(unsafe {
                _mm_loadu_si128(w.add(g * bw + 2 * h) as *const __m128i)
            });
            for (acc, fs) in acc.iter_mut().zip(fs) {
                *acc = _mm256_fmadd_ps(*fs, dw, *acc);
            }
        }
    }
    for (h, acc) in acc.iter().enumerate() {
        for (t, acc) in acc.iter().enumerate() {
            // SAFETY: `o + t·16 + 8h .. + 8` is inside the band.
            unsafe { _mm256_storeu_ps(o.add(t * ROWS + 8 * h), *acc) };
        }
    }
}

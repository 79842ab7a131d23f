//! `Q4_1` and `Q5_1` weights · `Q8_1` activations, the asymmetric legacy
//! formats (value `q·d + m`, `q` unsigned). Written after ggml-cpu
//! arch/x86/quants.c `ggml_vec_dot_q4_1_q8_1` / `ggml_vec_dot_q5_1_q8_1`,
//! not copied.
//!
//! Integers: the quants are unsigned (0..=15 / 0..=31) and the activations
//! signed, exactly the operand types of `maddubs` and `vpdpbusd`, so no
//! offset correction is needed. Every lane sum is exact for *all* byte
//! patterns: AVX2 `maddubs` pairs reach at most 2·31·128 = 7936 (no `i16`
//! saturation), and `vpdpbusd` accumulates in `i32`. Lane `j` holds the
//! 4 products of bytes `4j..4j+4`, as in ggml.
//!
//! Floats, in ggml's x86 order, so that the engine sees llama.cpp's own
//! rounding and not only the scalar reference's up to a bound: per block,
//! `acc = fma(d_w·d_a, lanes, acc)` on 8 lanes, and separately `summs +=
//! m_w·s_a` in one scalar chain; at the end `hsum(acc) + summs`, `hsum` in
//! `hsum_float_8`'s order. Both products are exact (two `f16`: at most 22
//! significant bits, no underflow in `f32`), so whether ggml's compiler
//! contracts `summs += m·s` into an FMA (GCC with `-std=gnu11` does) does
//! not matter. One block at a time: unlike the `Q*_0` kernels (legacy.rs)
//! no pairing, which would change the rounding. Checked bit for bit
//! against libggml-cpu's dispatching kernels (AVX-512 build) on the
//! recorded answers in tests/data/standard/ and, once, on 800 random rows.
//!
//! The `f16` pairs `(d_w, m_w)` and `(d_a, s_a)` sit in the first 4 bytes
//! of their blocks; each pair is loaded and converted at once as
//! `[d, m, d, m]` / `[d, s, d, s]`, and one 128-bit product yields both
//! `d_w·d_a` (lane 0, broadcast for `acc`) and `m_w·s_a` (lane 1, added
//! to the `summs` chain; the other lanes' sums are never read).
//!
//! Against the scalar reference (one running sum of `(d_w·d_a)·sumi +
//! m_w·s_a`), only the rounding order differs: with `T' = Σ_blocks
//! (|d_w·d_a|·Σ|q·q_a| + |m_w·s_a|)` both are within `(nb + 4)·u·T'` of
//! the exact value (`u = 2⁻²⁴`; here `nb` FMAs per lane or adds to
//! `summs`, 3 `hsum` adds and the final add; the reference rounds the
//! product, the sum of the two terms and the running sum), so `|simd −
//! scalar| ≤ (2·nb + 8)·u·T'` (tests/simd_standard.rs).
//! Per row the sequence does not depend on how many rows run together, so
//! `vec_dot_multi` equals `vec_dot` bit for bit.

use super::legacy::{bit_bytes, nibbles};
use super::util::{act_rows, hsum_ps, ld32, TILE};
use std::arch::x86_64::*;

/// Bytes per `block_q4_1` (ggml-common.h: `d`, `m`, `qs[16]`).
const Q4: usize = 20;
/// Bytes per `block_q5_1` (ggml-common.h: `d`, `m`, `qh`, `qs[16]`).
const Q5: usize = 24;
/// Bytes per `block_q8_1` (ggml-common.h: `d`, `s`, `qs[32]`).
const Q8: usize = 36;

/// The two `f16` at `b[0..4]` (`d` and `m`, or `d` and `s`) converted to
/// `f32` (exact) as `[d, m, d, m]`: one broadcast and one conversion.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn f16_pair(b: &[u8]) -> __m128 {
    _mm_cvtph_ps(_mm_set1_epi32(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
}

/// A weight block: unsigned quants in ggml's byte order (low nibbles are
/// quants 0..16, high nibbles 16..32) and `[d, m, d, m]`.
#[derive(Clone, Copy)]
struct Block {
    q: __m256i,
    dm: __m128,
}

/// The fifth bits of a `Q5_1` block, bit `i` for quant `i`.
#[inline]
fn q5_1_qh(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[4], b[5], b[6], b[7]])
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dec_q4_1(b: &[u8]) -> Block {
    Block {
        q: nibbles(b, 4),
        dm: f16_pair(b),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dec_q5_1_avx2(b: &[u8]) -> Block {
    let hi = _mm256_and_si256(bit_bytes(q5_1_qh(b)), _mm256_set1_epi8(0x10));
    Block {
        q: _mm256_or_si256(nibbles(b, 8), hi),
        dm: f16_pair(b),
    }
}

/// `Q5_1` with the fifth bits as a byte mask: `+16` where the bit is set.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn dec_q5_1_vnni(b: &[u8]) -> Block {
    let nib = nibbles(b, 8);
    Block {
        q: _mm256_mask_add_epi8(nib, q5_1_qh(b), nib, _mm256_set1_epi8(16)),
        dm: f16_pair(b),
    }
}

/// Exact lane sums `Σ q·q_a` (module doc): `maddubs`, then pairs of `i16`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot_avx2(w: &Block, a: &[u8]) -> __m256i {
    let p = _mm256_maddubs_epi16(w.q, ld32(a, 4));
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// Exact lane sums `Σ q·q_a` with one `vpdpbusd`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn dot_vnni(w: &Block, a: &[u8]) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), w.q, ld32(a, 4))
}

/// One row's running sums: `acc` (8 lanes of `d_w·d_a·lanes`) and the
/// `m_w·s_a` chain in lane 1 of `ms` (lane 0 sums the `d_w·d_a`, unused).
#[derive(Clone, Copy)]
struct Sums {
    acc: __m256,
    ms: __m128,
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn zero() -> Sums {
    Sums {
        acc: _mm256_setzero_ps(),
        ms: _mm_setzero_ps(),
    }
}

/// Adds one block (weight `w`, activation block `a`, lane sums `s`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn step(t: &mut Sums, w: &Block, a: &[u8], s: __m256i) {
    let ds = f16_pair(a);
    // [d_w·d_a, m_w·s_a, ..], both exact (module doc).
    let p = _mm_mul_ps(w.dm, ds);
    t.acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), _mm256_cvtepi32_ps(s), t.acc);
    t.ms = _mm_add_ps(t.ms, p);
}

/// `hsum(acc) + summs`, ggml's final expression.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn finish(t: Sums) -> f32 {
    hsum_ps(t.acc) + _mm_cvtss_f32(_mm_movehdup_ps(t.ms))
}

/// Generates, for one format and level: the single-row kernel, the
/// multi-row tile kernel (both `#[target_feature]`, safe to call only after
/// detection) and their safe wrappers for [`crate::Kernels`].
macro_rules! kernel {
    ($feat:literal, $wb:expr, $decode:ident, $dot:ident,
     $single:ident, $tile:ident, $vec_dot:ident, $multi:ident) => {
        #[target_feature(enable = $feat)]
        fn $single(w: &[u8], a: &[u8]) -> f32 {
            let (wb, wr) = w.as_chunks::<$wb>();
            let (ab, ar) = a.as_chunks::<Q8>();
            debug_assert!(wr.is_empty() && ar.is_empty() && wb.len() == ab.len());
            let mut t = zero();
            for (bw, ba) in wb.iter().zip(ab) {
                let w0 = $decode(bw);
                step(&mut t, &w0, ba, $dot(&w0, ba));
            }
            finish(t)
        }

        /// Up to [`TILE`] activation rows against one weight row.
        #[target_feature(enable = $feat)]
        fn $tile(w: &[u8], rows: &[&[u8]], out: &mut [f32]) {
            let (wb, wr) = w.as_chunks::<$wb>();
            debug_assert!(wr.is_empty() && rows.len() == out.len() && out.len() <= TILE);
            let mut sums = [zero(); TILE];
            for (i, bw) in wb.iter().enumerate() {
                let w0 = $decode(bw);
                for (t, a) in sums.iter_mut().zip(rows) {
                    let ba = &a.as_chunks::<Q8>().0[i];
                    step(t, &w0, ba, $dot(&w0, ba));
                }
            }
            for (o, t) in out.iter_mut().zip(sums) {
                *o = finish(t);
            }
        }

        pub(super) fn $vec_dot(w: &[u8], a: &[u8]) -> f32 {
            // SAFETY: installed by apply() only after detection of the
            // target features of this kernel.
            unsafe { $single(w, a) }
        }

        pub(super) fn $multi(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
            let len = w.len() / $wb * Q8;
            let mut rows: [&[u8]; TILE] = [&[]; TILE];
            for (ti, o) in out.chunks_mut(TILE).enumerate() {
                act_rows(a, a_row, ti * TILE, len, &mut rows, o.len());
                // SAFETY: installed by apply() only after detection of the
                // target features of this kernel.
                unsafe { $tile(w, &rows[..o.len()], o) };
            }
        }
    };
}

kernel!(
    "avx2,fma,f16c",
    Q4,
    dec_q4_1,
    dot_avx2,
    q4_1_single_avx2,
    q4_1_tile_avx2,
    q4_1_avx2,
    q4_1_multi_avx2
);
kernel!(
    "avx2,fma,f16c",
    Q5,
    dec_q5_1_avx2,
    dot_avx2,
    q5_1_single_avx2,
    q5_1_tile_avx2,
    q5_1_avx2,
    q5_1_multi_avx2
);
kernel!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Q4,
    dec_q4_1,
    dot_vnni,
    q4_1_single_512,
    q4_1_tile_512,
    q4_1_512,
    q4_1_multi_512
);
kernel!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Q5,
    dec_q5_1_vnni,
    dot_vnni,
    q5_1_single_512,
    q5_1_tile_512,
    q5_1_512,
    q5_1_multi_512
);

//! `Q8_0`, `Q5_0` and `Q4_0` weights · `Q8_0` activations (ggml-cpu
//! arch/x86/quants.c `ggml_vec_dot_q{8,5,4}_0_q8_0`, rewritten).
//!
//! Each 32-weight block is decoded once into signed bytes (`q`, `q-16`,
//! `q-8`), then dotted with every activation row's block. The integer sum of
//! a block is exact for *every* byte pattern, activations −128 included:
//!
//! * AVX2, `Q5_0`/`Q4_0`: `maddubs(a ⊕ 0x80, w)` sums `(a+128)·w` in pairs
//!   (at most 2·255·16 = 8160, no `i16` saturation), and the weight-only
//!   correction `128·Σw` is subtracted per lane.
//! * AVX2, `Q8_0`: both sides widened to `i16` and `madd`ed (the sign trick
//!   of ggml saturates or wraps for −128).
//! * AVX-512 (VNNI, 256-bit): `dpbusd(−128·Σw, a ⊕ 0x80, w)`, exact for all
//!   `i8` weights since `vpdpbusd` accumulates in `i32` without saturation.
//!
//! Scales: each block's `f16` scales are broadcast and converted in vector
//! registers, `dd = d_w·d_a` (exact: a product of two `f16`). (Gathering
//! the scales of 32 blocks with scalar loads and converting 8 at a time
//! measured slower on Zen 4: the gather costs more than it saves.)
//!
//! Float combination: a block's 8 `i32` lane sums (each at most 4·128² in
//! magnitude, so exact in `f32`) are scaled by `dd`. Blocks are taken in
//! pairs, `t = s₀·dd₀; t = fma(s₁, dd₁, t); acc += t` (an odd last block:
//! `acc = fma(s, dd, acc)`), then the 8 lanes are summed in a fixed order.
//! Per row this sequence does not depend on how many rows are processed
//! together, so `vec_dot_multi` equals `vec_dot` bit for bit. Against the
//! scalar reference (one running `f32` sum over blocks) only the rounding
//! order differs: both are within `γ_k·T` of the exact value, `T = Σ_i
//! |d_w·d_a·w_i·a_i|`, with `k ≤ nb+2` (scalar; `Q4_0` rounds twice per
//! term) and `k ≤ ⌈nb/2⌉ + 5` (here), so `|simd − scalar| ≤ (1.5·nb +
//! 8)·2⁻²⁴·T` (tests/simd_standard.rs checks this bound).

use super::util::{act_rows, hsum_ps, ld16, ld32, TILE};
use std::arch::x86_64::*;

/// Bytes per `block_q8_0` (ggml-common.h).
const Q8: usize = 34;
/// Bytes per `block_q5_0` (ggml-common.h).
const Q5: usize = 22;
/// Bytes per `block_q4_0` (ggml-common.h).
const Q4: usize = 18;

/// The `f16` scale `d` (bytes 0..2) of a block, converted to `f32`
/// (exact) and broadcast: one 16-bit broadcast load and one conversion.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn f16_bcast(b: &[u8]) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes([b[0], b[1]])))
}

/// A `Q8_0` weight block widened to `i16` (AVX2), and its scale.
#[derive(Clone, Copy)]
struct Wide {
    lo: __m256i,
    hi: __m256i,
    dw: __m256,
}

/// A weight block as signed bytes with its per-lane correction: `c` is
/// `128·Σw` of the lane's 4 weights (AVX2) or `−128·Σw` (VNNI).
#[derive(Clone, Copy)]
struct Signed {
    q: __m256i,
    c: __m256i,
    dw: __m256,
}

/// The 32 nibbles of `qs[16]` at `b[off..]` as bytes: low nibbles first
/// (values 0..16), then high nibbles (16..32) — ggml's `Q4_0`/`Q5_0` order.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn nibbles(b: &[u8], off: usize) -> __m256i {
    let x = _mm256_broadcastsi128_si256(ld16(b, off));
    // 32-bit shifts: bits crossing bytes land in the high nibble, dropped.
    let x = _mm256_srlv_epi32(x, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    _mm256_and_si256(x, _mm256_set1_epi8(0x0F))
}

/// The `qh` of a `Q5_0` block (bit `i` = fifth bit of quant `i`).
#[inline]
fn q5_0_qh(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[2], b[3], b[4], b[5]])
}

/// The 32 bits of `qh` spread to bytes: byte `i` is 0xFF where bit `i` is
/// set, else 0 (AVX2 has no mask registers; shared with `Q5_1`).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn bit_bytes(qh: u32) -> __m256i {
    let v = _mm256_set1_epi32(qh as i32);
    // Byte i takes byte i/8 of qh (shuffles stay within 128-bit lanes, and
    // both lanes hold all of qh), then tests bit i%8.
    let pick = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(v, pick), bit), bit)
}

/// `Q5_0` quants minus 16 (ggml-common.h `block_q5_0`: `d`, `qh`, `qs`).
#[target_feature(enable = "avx2")]
#[inline]
fn q5_0_signed(b: &[u8]) -> __m256i {
    let set = bit_bytes(q5_0_qh(b));
    // q - 16 = nibble when the fifth bit is set, else nibble | 0xF0.
    let hi = _mm256_andnot_si256(set, _mm256_set1_epi8(0xF0_u8 as i8));
    _mm256_or_si256(nibbles(b, 6), hi)
}

/// `Q4_0` quants minus 8 (ggml-common.h `block_q4_0`: `d`, `qs`).
#[target_feature(enable = "avx2")]
#[inline]
fn q4_0_signed(b: &[u8]) -> __m256i {
    _mm256_sub_epi8(nibbles(b, 2), _mm256_set1_epi8(8))
}

// ---- AVX2 -----------------------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn q8_0_wide(b: &[u8]) -> Wide {
    Wide {
        lo: _mm256_cvtepi8_epi16(ld16(b, 2)),
        hi: _mm256_cvtepi8_epi16(ld16(b, 18)),
        dw: f16_bcast(b),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn wide_dot(w: &Wide, a: &[u8]) -> __m256i {
    let lo = _mm256_madd_epi16(w.lo, _mm256_cvtepi8_epi16(ld16(a, 2)));
    let hi = _mm256_madd_epi16(w.hi, _mm256_cvtepi8_epi16(ld16(a, 18)));
    _mm256_add_epi32(lo, hi)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn signed_avx2(q: __m256i, b: &[u8]) -> Signed {
    let p = _mm256_maddubs_epi16(_mm256_set1_epi8(0x80_u8 as i8), q);
    Signed {
        q,
        c: _mm256_madd_epi16(p, _mm256_set1_epi16(1)),
        dw: f16_bcast(b),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dec_q5_0_avx2(b: &[u8]) -> Signed {
    signed_avx2(q5_0_signed(b), b)
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dec_q4_0_avx2(b: &[u8]) -> Signed {
    signed_avx2(q4_0_signed(b), b)
}

/// Exact lane sums `Σ a·w` for weights in `-16..=15` (see the module doc).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn signed_dot_avx2(w: &Signed, a: &[u8]) -> __m256i {
    let ua = _mm256_xor_si256(ld32(a, 2), _mm256_set1_epi8(0x80_u8 as i8));
    let p = _mm256_madd_epi16(_mm256_maddubs_epi16(ua, w.q), _mm256_set1_epi16(1));
    _mm256_sub_epi32(p, w.c)
}

// ---- AVX-512 VNNI (256-bit) ------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn signed_vnni(q: __m256i, b: &[u8]) -> Signed {
    let zero = _mm256_setzero_si256();
    let c = _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(0x80_u8 as i8), q);
    Signed {
        q,
        c: _mm256_sub_epi32(zero, c),
        dw: f16_bcast(b),
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn dec_q8_0_vnni(b: &[u8]) -> Signed {
    signed_vnni(ld32(b, 2), b)
}

/// `Q5_0` with the fifth bits as a byte mask: `q − 16` is the nibble where
/// the bit is set and `nibble − 16` where it is clear.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn dec_q5_0_vnni(b: &[u8]) -> Signed {
    let nib = nibbles(b, 6);
    let clear: __mmask32 = !q5_0_qh(b);
    signed_vnni(
        _mm256_mask_sub_epi8(nib, clear, nib, _mm256_set1_epi8(16)),
        b,
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn dec_q4_0_vnni(b: &[u8]) -> Signed {
    signed_vnni(q4_0_signed(b), b)
}

/// Exact lane sums `Σ a·w` for any `i8` weights: `Σ (a+128)·w − 128·Σw`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
fn signed_dot_vnni(w: &Signed, a: &[u8]) -> __m256i {
    let ua = _mm256_xor_si256(ld32(a, 2), _mm256_set1_epi8(0x80_u8 as i8));
    _mm256_dpbusd_epi32(w.c, ua, w.q)
}

// ---- the shared float combination ------------------------------------------

/// `acc + (s₀·dd₀ + s₁·dd₁)` for a pair of blocks (see the module doc).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn pair(acc: __m256, s0: __m256i, dd0: __m256, s1: __m256i, dd1: __m256) -> __m256 {
    let t = _mm256_mul_ps(_mm256_cvtepi32_ps(s0), dd0);
    let t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s1), dd1, t);
    _mm256_add_ps(acc, t)
}

/// `acc + s·dd` for an odd last block.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn one(acc: __m256, s: __m256i, dd: __m256) -> __m256 {
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc)
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
            let mut acc = _mm256_setzero_ps();
            let mut pw = wb.chunks_exact(2);
            let mut pa = ab.chunks_exact(2);
            for (w2, a2) in (&mut pw).zip(&mut pa) {
                let (w0, w1) = ($decode(&w2[0]), $decode(&w2[1]));
                let dd0 = _mm256_mul_ps(w0.dw, f16_bcast(&a2[0]));
                let dd1 = _mm256_mul_ps(w1.dw, f16_bcast(&a2[1]));
                acc = pair(acc, $dot(&w0, &a2[0]), dd0, $dot(&w1, &a2[1]), dd1);
            }
            if let (Some(bw), Some(ba)) = (pw.remainder().first(), pa.remainder().first()) {
                let w0 = $decode(bw);
                let dd = _mm256_mul_ps(w0.dw, f16_bcast(ba));
                acc = one(acc, $dot(&w0, ba), dd);
            }
            hsum_ps(acc)
        }

        /// Up to [`TILE`] activation rows against one weight row.
        #[target_feature(enable = $feat)]
        fn $tile(w: &[u8], rows: &[&[u8]], out: &mut [f32]) {
            let (wb, wr) = w.as_chunks::<$wb>();
            debug_assert!(wr.is_empty() && rows.len() == out.len() && out.len() <= TILE);
            let mut acc = [_mm256_setzero_ps(); TILE];
            let nb = wb.len();
            let mut i = 0;
            while i + 2 <= nb {
                let (w0, w1) = ($decode(&wb[i]), $decode(&wb[i + 1]));
                for (acc, a) in acc.iter_mut().zip(rows) {
                    let ab = a.as_chunks::<Q8>().0;
                    let (a0, a1) = (&ab[i], &ab[i + 1]);
                    let dd0 = _mm256_mul_ps(w0.dw, f16_bcast(a0));
                    let dd1 = _mm256_mul_ps(w1.dw, f16_bcast(a1));
                    *acc = pair(*acc, $dot(&w0, a0), dd0, $dot(&w1, a1), dd1);
                }
                i += 2;
            }
            if i < nb {
                let w0 = $decode(&wb[i]);
                for (acc, a) in acc.iter_mut().zip(rows) {
                    let a0 = &a.as_chunks::<Q8>().0[i];
                    let dd = _mm256_mul_ps(w0.dw, f16_bcast(a0));
                    *acc = one(*acc, $dot(&w0, a0), dd);
                }
            }
            for (o, acc) in out.iter_mut().zip(acc) {
                *o = hsum_ps(acc);
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
    Q8,
    q8_0_wide,
    wide_dot,
    q8_0_single_avx2,
    q8_0_tile_avx2,
    q8_0_avx2,
    q8_0_multi_avx2
);
kernel!(
    "avx2,fma,f16c",
    Q5,
    dec_q5_0_avx2,
    signed_dot_avx2,
    q5_0_single_avx2,
    q5_0_tile_avx2,
    q5_0_avx2,
    q5_0_multi_avx2
);
kernel!(
    "avx2,fma,f16c",
    Q4,
    dec_q4_0_avx2,
    signed_dot_avx2,
    q4_0_single_avx2,
    q4_0_tile_avx2,
    q4_0_avx2,
    q4_0_multi_avx2
);
kernel!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Q8,
    dec_q8_0_vnni,
    signed_dot_vnni,
    q8_0_single_512,
    q8_0_tile_512,
    q8_0_512,
    q8_0_multi_512
);
kernel!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Q5,
    dec_q5_0_vnni,
    signed_dot_vnni,
    q5_0_single_512,
    q5_0_tile_512,
    q5_0_512,
    q5_0_multi_512
);
kernel!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Q4,
    dec_q4_0_vnni,
    signed_dot_vnni,
    q4_0_single_512,
    q4_0_tile_512,
    q4_0_512,
    q4_0_multi_512
);

//! x86 kernels of the 1-bit and ternary formats: `Q1_0`, `Q2_0` (g64),
//! `Q2_0` g128 / `PQ2_0` against `Q8_0` activations, `TQ1_0` and `TQ2_0`
//! against `Q8_K`, each in an AVX2 and an AVX-512 (F+BW+VL+VNNI) version.
//!
//! All of them return the scalar reference's result (`crate::{q1_0, q2_0,
//! q2_0_g128, tq1_0, tq2_0}`) bit for bit: the integer sum of each
//! activation block is formed exactly (no saturation anywhere, `-128`
//! activations and the never-written code 3 included), scaled with the
//! same `f32` operations in the same order, and the weight-block terms are
//! added to the row total one by one in row order. One precondition the
//! references do not have: the `TQ*` kernels take `Σ q` of a `block_q8_K`
//! from its `bsums`, as ggml's x86 kernels do; `Q8_K` blocks written by the
//! quantizer always have consistent sums.
//!
//! `vec_dot_multi` decodes the weights once for several activation rows
//! (eight at a time for the `Q8_0` family, one row per lane); being exact
//! too, it equals `vec_dot` per row bit for bit.
//!
//! The `Q8_0` family shares one pipeline per instruction set
//! ([`q8_0_avx2`], [`q8_0_avx512`]); the `Q8_K` pair has its own
//! ([`tq_avx2`], [`tq_avx512`]).

use crate::simd::Isa;
use crate::{GgmlType, Kernels};

/// Eight f16 values, lane `$i` read by the expression `$get` (a `u16`),
/// as f32 (`__m256`). Scalar loads inserted one by one: on Zen 4 about
/// twice as fast as `vpgatherdd`. A macro, not a function: a
/// `#[target_feature]` function this small was not always inlined, and the
/// call took a quarter of the kernel's time.
macro_rules! f16x8 {
    ($i:ident => $get:expr) => {{
        let g = |$i: usize| i32::from($get);
        let mut v = _mm_cvtsi32_si128(g(0));
        v = _mm_insert_epi16::<1>(v, g(1));
        v = _mm_insert_epi16::<2>(v, g(2));
        v = _mm_insert_epi16::<3>(v, g(3));
        v = _mm_insert_epi16::<4>(v, g(4));
        v = _mm_insert_epi16::<5>(v, g(5));
        v = _mm_insert_epi16::<6>(v, g(6));
        v = _mm_insert_epi16::<7>(v, g(7));
        _mm256_cvtph_ps(v)
    }};
}

/// `[e(0), e(1), .., e(7)]` for the expression `$e` of `$i`, written out:
/// LLVM does not always unroll the equivalent loop, and then the vectors
/// go through the stack.
macro_rules! arr8 {
    ($i:ident => $e:expr) => {
        [
            {
                let $i = 0usize;
                $e
            },
            {
                let $i = 1usize;
                $e
            },
            {
                let $i = 2usize;
                $e
            },
            {
                let $i = 3usize;
                $e
            },
            {
                let $i = 4usize;
                $e
            },
            {
                let $i = 5usize;
                $e
            },
            {
                let $i = 6usize;
                $e
            },
            {
                let $i = 7usize;
                $e
            },
        ]
    };
}

mod load;
mod q8_0_avx2;
mod q8_0_avx512;
mod tq_avx2;
mod tq_avx512;

/// Install the kernels of `ty` for `level` (already capped at what the CPU
/// supports by the caller).
pub(super) fn apply(ty: GgmlType, level: Isa, k: &mut Kernels) {
    use GgmlType::*;
    let avx512 = level >= Isa::Avx512;
    let (dot, multi): (crate::VecDotFn, crate::VecDotMultiFn) = match (ty, avx512) {
        (Q1_0, false) => (q8_0_avx2::dot_q1_0, q8_0_avx2::multi_q1_0),
        (Q1_0, true) => (q8_0_avx512::dot_q1_0, q8_0_avx512::multi_q1_0),
        (Q2_0, false) => (q8_0_avx2::dot_q2_0, q8_0_avx2::multi_q2_0),
        (Q2_0, true) => (q8_0_avx512::dot_q2_0, q8_0_avx512::multi_q2_0),
        (Q2_0G128 | PQ2_0, false) => (q8_0_avx2::dot_g128, q8_0_avx2::multi_g128),
        (Q2_0G128 | PQ2_0, true) => (q8_0_avx512::dot_g128, q8_0_avx512::multi_g128),
        (TQ1_0, false) => (tq_avx2::dot_tq1_0, tq_avx2::multi_tq1_0),
        (TQ1_0, true) => (tq_avx512::dot_tq1_0, tq_avx512::multi_tq1_0),
        (TQ2_0, false) => (tq_avx2::dot_tq2_0, tq_avx2::multi_tq2_0),
        (TQ2_0, true) => (tq_avx512::dot_tq2_0, tq_avx512::multi_tq2_0),
        _ => return,
    };
    if level >= Isa::Avx2 {
        k.vec_dot = dot;
        k.vec_dot_multi = multi;
    }
}

/// How many whole blocks a dot product covers: as the scalar references
/// (`zip` of `chunks_exact`), the shorter operand decides and trailing
/// partial blocks are ignored.
fn whole_blocks(w_len: usize, w_block: usize, a_len: usize, a_block: usize) -> usize {
    (w_len / w_block).min(a_len / a_block)
}

/// The activation row `t` of a `vec_dot_multi` call, as the scalar
/// reference slices it (`a[t * a_row..(t + 1) * a_row]`, panicking alike
/// when `a` is too short).
#[inline(always)]
fn row(a: &[u8], a_row: usize, t: usize) -> &[u8] {
    &a[t * a_row..(t + 1) * a_row]
}

/// `b` at the start of a zeroed `N`-byte buffer (the last, partial group of
/// a row: zero scales make the padding contribute exactly 0).
fn padded<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut x = [0; N];
    x[..b.len()].copy_from_slice(b);
    x
}

/// `s[lo..hi]`, or when only `s[lo..end]` is there (`end < hi`: the last,
/// partial group of a row), those bytes zero-padded to `hi - lo` in `buf`.
#[inline(always)]
fn pick<'a, const N: usize>(
    s: &'a [u8],
    (lo, hi, end): (usize, usize, usize),
    buf: &'a mut Option<[u8; N]>,
) -> &'a [u8] {
    if hi <= end {
        &s[lo..hi]
    } else {
        &buf.insert(padded::<N>(&s[lo..end]))[..hi - lo]
    }
}

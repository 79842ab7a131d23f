//! x86 kernels of the 1-bit and ternary formats: `Q1_0`, `Q2_0` (g64),
//! `Q2_0` g128 / `PQ2_0`, `PTQ1_0` against `Q8_0R` activations, `TQ1_0` and `TQ2_0`
//! against `Q8_K`, each in an AVX2 and an AVX-512 (F+BW+VL+VNNI) version;
//! and the `Q8_0R` quantizer on top of the SIMD `Q8_0` one.
//!
//! Every integer block sum is formed exactly (no saturation anywhere,
//! `-128` activations and the never-written code 3 included). The `TQ*`
//! kernels then scale and add in the scalar references' `f32` order and
//! return their result bit for bit; they take `Σ q` of a `block_q8_K` from
//! its `bsums`, as ggml's x86 kernels do. The `Q8_0R` kernels take `Σ q`
//! from the sums plane and scale lane-wise with one horizontal sum per row
//! (the sequential order of the references would cost a dependent add per
//! weight block): they agree with `crate::{q1_0, q2_0, q2_0_g128, ptq1_0}` to a few
//! ulps of `Σ |d_w·d_a·sumi|`. Blocks written by the quantizers always have
//! consistent sums.
//!
//! `vec_dot_multi` decodes the weights once for several activation rows
//! and equals `vec_dot` per row bit for bit.
//!
//! The `Q8_0R` family shares one pipeline per instruction set
//! ([`planar_avx2`], [`planar_avx512`]); the `Q8_K` pair has its own
//! ([`tq_avx2`], [`tq_avx512`]).

use crate::simd::Isa;
use crate::{GgmlType, Kernels};

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
mod planar_avx2;
mod planar_avx512;
mod ptq1;
mod tq_avx2;
mod tq_avx512;

/// Weight layouts of the `Q8_0R` kernels (their const parameter).
const Q1: u8 = 0;
const G64: u8 = 1;
const G128: u8 = 2;
/// `PTQ1_0`: 128 weights in 28 bytes, the scale last (see [`ptq1`]).
const PT1: u8 = 3;

/// Bytes of one weight block (`block_q1_0`: 2 + 16, `block_q2_0`: 2 + 16,
/// g128: 2 + 32, `block_ptq1_0`: 24 + 2 + 2).
const fn wb_bytes(f: u8) -> usize {
    match f {
        G128 => 34,
        PT1 => 28,
        _ => 18,
    }
}

/// Offset of the f16 scale in a weight block (first, but last in
/// `PTQ1_0`).
const fn wb_scale(f: u8) -> usize {
    if f == PT1 {
        26
    } else {
        0
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

/// The scales of weight blocks `b..b + 4` of layout `F` (little-endian
/// f16 at [`wb_scale`] of each block) packed into a `u64`, lowest first.
/// Not a closure: closures do not inherit `#[target_feature]` and were
/// called out of line, spilling every vector register.
#[inline(always)]
fn f16x4<const F: u8>(wg: &[u8], b: usize) -> u64 {
    let h = |i: usize| u64::from(load::u16_at(wg, (b + i) * wb_bytes(F) + wb_scale(F)));
    h(0) | h(1) << 16 | h(2) << 32 | h(3) << 48
}

/// `Q8_0R` quantizers on top of each level's `Q8_0` quantizer (bit-exact
/// with the scalar reference, so these are too).
fn q8_0r_avx2(src: &[f32], dst: &mut [u8]) {
    let q8_0 = crate::simd::kernels_for(GgmlType::Q8_0, Isa::Avx2).quantize;
    crate::q8_0r::quantize_with(q8_0, src, dst);
}

fn q8_0r_avx512(src: &[f32], dst: &mut [u8]) {
    let q8_0 = crate::simd::kernels_for(GgmlType::Q8_0, Isa::Avx512).quantize;
    crate::q8_0r::quantize_with(q8_0, src, dst);
}

/// Install the kernels of `ty` for `level` (already capped at what the CPU
/// supports by the caller).
pub(super) fn apply(ty: GgmlType, level: Isa, k: &mut Kernels) {
    use GgmlType::*;
    let avx512 = level >= Isa::Avx512;
    if ty == Q8_0R && level >= Isa::Avx2 {
        k.quantize = if avx512 { q8_0r_avx512 } else { q8_0r_avx2 };
        return;
    }
    let (dot, multi): (crate::VecDotFn, crate::VecDotMultiFn) = match (ty, avx512) {
        (Q1_0, false) => (planar_avx2::dot_q1_0, planar_avx2::multi_q1_0),
        (Q1_0, true) => (planar_avx512::dot_q1_0, planar_avx512::multi_q1_0),
        (Q2_0, false) => (planar_avx2::dot_q2_0, planar_avx2::multi_q2_0),
        (Q2_0, true) => (planar_avx512::dot_q2_0, planar_avx512::multi_q2_0),
        (Q2_0G128 | PQ2_0, false) => (planar_avx2::dot_g128, planar_avx2::multi_g128),
        (Q2_0G128 | PQ2_0, true) => (planar_avx512::dot_g128, planar_avx512::multi_g128),
        (PTQ1_0, false) => (planar_avx2::dot_ptq1_0, planar_avx2::multi_ptq1_0),
        (PTQ1_0, true) => (planar_avx512::dot_ptq1_0, planar_avx512::multi_ptq1_0),
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

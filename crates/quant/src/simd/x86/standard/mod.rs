//! x86-64 kernels of the standard formats: the activation quantizers `Q8_0`,
//! `Q8_1` and `Q8_K`, and the dot products of `Q8_0`/`Q5_0`/`Q4_0` (against
//! `Q8_0`), `Q4_1`/`Q5_1` (against `Q8_1`), `Q4_K`/`Q5_K`/`Q6_K` (against
//! `Q8_K`), `F16` and `F32`. Written
//! after ggml-cpu arch/x86/quants.c and vec.cpp, not copied.
//!
//! Contract with the scalar references (tests/simd_standard.rs checks it):
//! the quantizers are bit for bit equal; every integer block sum is exact
//! for all byte patterns; the K-quant dots replay the references' `f32`
//! operations in order and are bit for bit equal too; the 32-weight
//! formats and the float formats differ only in the order of `f32`/`f64`
//! additions (bounds in `legacy`, `asym` and `float`; `asym` follows
//! ggml's x86 order, see there). `vec_dot_multi` equals
//! `vec_dot` row by row, bit for bit.
//!
//! The `Q6_K` dots use the `Q8_K` block sums for the `−32` offset (as
//! ggml's x86 code does), so they rely on the `Q8_K` invariant `bsums[g] =
//! Σ qs[16g..16g+16]`, which the quantizer guarantees.

use crate::simd::Isa;
use crate::{GgmlType, Kernels};

mod asym;
mod float;
mod k_avx2;
mod k_avx512;
mod legacy;
mod quantize;
mod util;

/// Install the SIMD kernels of `ty` for `level` (AVX2 needs AVX2+FMA+F16C;
/// AVX-512 adds F+BW+VL+VNNI, see `super::detected`).
pub(super) fn apply(ty: GgmlType, level: Isa, k: &mut Kernels) {
    use GgmlType::*;
    if level < Isa::Avx2 {
        return;
    }
    let v512 = level >= Isa::Avx512;
    let (dot, multi): (crate::VecDotFn, crate::VecDotMultiFn) = match (ty, v512) {
        (Q8_0, false) => (legacy::q8_0_avx2, legacy::q8_0_multi_avx2),
        (Q8_0, true) => (legacy::q8_0_512, legacy::q8_0_multi_512),
        (Q5_0, false) => (legacy::q5_0_avx2, legacy::q5_0_multi_avx2),
        (Q5_0, true) => (legacy::q5_0_512, legacy::q5_0_multi_512),
        (Q4_0, false) => (legacy::q4_0_avx2, legacy::q4_0_multi_avx2),
        (Q4_0, true) => (legacy::q4_0_512, legacy::q4_0_multi_512),
        (Q4_1, false) => (asym::q4_1_avx2, asym::q4_1_multi_avx2),
        (Q4_1, true) => (asym::q4_1_512, asym::q4_1_multi_512),
        (Q5_1, false) => (asym::q5_1_avx2, asym::q5_1_multi_avx2),
        (Q5_1, true) => (asym::q5_1_512, asym::q5_1_multi_512),
        (Q4K, false) => (k_avx2::q4_k, k_avx2::q4_k_multi),
        (Q4K, true) => (k_avx512::q4_k, k_avx512::q4_k_multi),
        (Q5K, false) => (k_avx2::q5_k, k_avx2::q5_k_multi),
        (Q5K, true) => (k_avx512::q5_k, k_avx512::q5_k_multi),
        (Q6K, false) => (k_avx2::q6_k, k_avx2::q6_k_multi),
        (Q6K, true) => (k_avx512::q6_k, k_avx512::q6_k_multi),
        (F32, _) => (float::f32_dot, float::f32_multi),
        (F16, _) => (float::f16_dot, float::f16_multi),
        (Q8K, _) => {
            k.quantize = quantize::q8_k;
            return;
        }
        (Q8_1, _) => {
            k.quantize = quantize::q8_1;
            return;
        }
        _ => return,
    };
    k.vec_dot = dot;
    k.vec_dot_multi = multi;
    if ty == Q8_0 {
        k.quantize = quantize::q8_0;
    }
}

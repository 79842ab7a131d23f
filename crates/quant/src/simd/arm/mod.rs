//! aarch64 kernels (NEON, which every aarch64 CPU has). Integer block sums
//! are formed with `vmull_s8` + `vpadalq_s16` (exact: an `i8·i8` product
//! fits `i16`, pairs are widened to `i32`), and scaled and summed in `f32`
//! with the scalar reference's operations in its order, so each kernel is
//! its reference **bit for bit** (tests/simd_standard.rs,
//! tests/simd_ternary.rs run them under emulation; see ci/aarch64-test.sh).
//!
//! Covered: `Q1_0`, `Q2_0` (g64, g128, `PQ2_0`), `PTQ1_0` against `Q8_0R`, `TQ1_0`
//! and `TQ2_0` against `Q8_K`, `Q8_0` and `Q5_0` against `Q8_0` (the first also the
//! `q8_0` KV cache), and `Q4_K`, `Q6_K` against `Q8_K` (with the real
//! fixture's formats, only its `F32` norms stay scalar), and the
//! activation quantizers `Q8_0`, `Q8_0R`, `Q8_K`. The other formats keep their
//! scalar kernels here; the dot-product extension (`sdot`) is not used yet.

use super::Isa;
use crate::{GgmlType, Kernels};

mod dots;
mod quantize;

/// NEON is part of the aarch64 base architecture.
pub(crate) fn detected() -> Isa {
    Isa::Neon
}

/// Replace the kernels of `ty` that have a NEON version.
pub(crate) fn apply(ty: GgmlType, level: Isa, k: &mut Kernels) {
    if level != Isa::Neon {
        return;
    }
    use GgmlType::*;
    match ty {
        Q8_0 => k.quantize = quantize::q8_0,
        Q8K => k.quantize = quantize::q8_k,
        Q8_0R => {
            k.quantize = quantize::q8_0r;
            return;
        }
        _ => {}
    }
    let dot: crate::VecDotFn = match ty {
        Q1_0 => dots::q1_0,
        Q2_0 => dots::q2_0,
        Q2_0G128 | PQ2_0 => dots::q2_0_g128,
        PTQ1_0 => dots::ptq1_0,
        Q8_0 => dots::q8_0,
        TQ1_0 => dots::tq1_0,
        TQ2_0 => dots::tq2_0,
        Q5_0 => dots::q5_0,
        Q4K => dots::q4_k,
        Q6K => dots::q6_k,
        _ => return,
    };
    k.vec_dot = dot;
    // Row by row with the same `vec_dot`, so multi equals it bit for bit.
    k.vec_dot_multi = match ty {
        Q1_0 => |w, a, a_row, out| multi(dots::q1_0, w, a, a_row, out),
        Q2_0 => |w, a, a_row, out| multi(dots::q2_0, w, a, a_row, out),
        Q2_0G128 | PQ2_0 => |w, a, a_row, out| multi(dots::q2_0_g128, w, a, a_row, out),
        PTQ1_0 => |w, a, a_row, out| multi(dots::ptq1_0, w, a, a_row, out),
        TQ1_0 => |w, a, a_row, out| multi(dots::tq1_0, w, a, a_row, out),
        TQ2_0 => |w, a, a_row, out| multi(dots::tq2_0, w, a, a_row, out),
        Q5_0 => |w, a, a_row, out| multi(dots::q5_0, w, a, a_row, out),
        Q4K => |w, a, a_row, out| multi(dots::q4_k, w, a, a_row, out),
        Q6K => |w, a, a_row, out| multi(dots::q6_k, w, a, a_row, out),
        _ => |w, a, a_row, out| multi(dots::q8_0, w, a, a_row, out),
    };
}

fn multi(dot: crate::VecDotFn, w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]) {
    for (t, o) in out.iter_mut().enumerate() {
        *o = dot(w, &a[t * a_row..(t + 1) * a_row]);
    }
}

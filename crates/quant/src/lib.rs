//! Tensor formats of GGML / GGUF: one file per format, each with its block
//! layout documented and a scalar reference for dequantize, quantize and the
//! dot product against quantized activations (ggml's `vec_dot`).
//!
//! Dot products follow ggml-cpu: activations are first quantized to the
//! weight format's [`GgmlType::vec_dot_type`] (Q8_0 for the 32-weight
//! formats, Q8_1 for `Q4_1` and `Q5_1`, Q8_0's row-planar form `Q8_0R`
//! for the 1-bit / ternary 64- and 128-weight ones (`PTQ1_0` included), Q8_K for the 256-weight ones, F16/BF16/F32 for the
//! float ones), then `vec_dot(weights, activations)` accumulates in integers
//! per block.

pub mod packed;
pub mod simd;
pub mod types;

mod bf16;
mod fp16;
mod fp32;
mod ptq1_0;
mod q1_0;
mod q2_0;
mod q2_0_g128;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod q8_0r;
mod q8_1;
mod q8_k;
mod tq1_0;
mod tq2_0;

pub use q2_0_g128::quantize_row_g128_absmean;
pub use types::{GgmlType, ResolveError, TypeTraits, ALL_TYPES, NO_GGUF_ID, QK_K};

/// Errors of the checked entry points.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    #[error("{n} values is not a whole number of {ty} blocks ({} per block)", ty.block_size())]
    NotWholeBlocks { ty: GgmlType, n: usize },
    #[error("{ty}: {n} values need {need} bytes, got {got}")]
    WrongByteLen {
        ty: GgmlType,
        n: usize,
        need: usize,
        got: usize,
    },
    #[error("{0} cannot be quantized to")]
    NoQuantize(GgmlType),
}

/// Dequantize whole blocks: `src.len() == dst.len() / block_size * type_size`.
pub type DequantizeFn = fn(src: &[u8], dst: &mut [f32]);
/// Quantize whole blocks: `dst.len() == src.len() / block_size * type_size`.
pub type QuantizeFn = fn(src: &[f32], dst: &mut [u8]);
/// Dot product of one row of weights with activations quantized to the
/// weights' `vec_dot_type`; both cover the same number of values.
pub type VecDotFn = fn(w: &[u8], a: &[u8]) -> f32;

/// Dot products of one weight row with `out.len()` activation rows stored
/// back to back, `a_row` bytes apart: `out[t] = vec_dot(w, a[t])`. Lets a
/// kernel decode each weight block once for several tokens (prefill).
pub type VecDotMultiFn = fn(w: &[u8], a: &[u8], a_row: usize, out: &mut [f32]);

/// The kernels of one format (ggml's `type_traits` + `type_traits_cpu`).
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub dequantize: DequantizeFn,
    pub quantize: QuantizeFn,
    pub vec_dot: VecDotFn,
    pub vec_dot_multi: VecDotMultiFn,
}

/// The scalar reference kernels of `ty`.
pub fn scalar_kernels(ty: GgmlType) -> Kernels {
    use GgmlType::*;
    macro_rules! k {
        ($m:ident) => {
            Kernels {
                dequantize: $m::dequantize,
                quantize: $m::quantize,
                vec_dot: $m::vec_dot,
                vec_dot_multi: |w, a, a_row, out| {
                    for (t, o) in out.iter_mut().enumerate() {
                        *o = $m::vec_dot(w, &a[t * a_row..(t + 1) * a_row]);
                    }
                },
            }
        };
    }
    match ty {
        F32 => k!(fp32),
        F16 => k!(fp16),
        BF16 => k!(bf16),
        Q4_0 => k!(q4_0),
        Q4_1 => k!(q4_1),
        Q5_0 => k!(q5_0),
        Q5_1 => k!(q5_1),
        Q8_0 => k!(q8_0),
        Q8_1 => k!(q8_1),
        Q8K => k!(q8_k),
        Q4K => k!(q4_k),
        Q5K => k!(q5_k),
        Q6K => k!(q6_k),
        Q1_0 => k!(q1_0),
        Q2_0 => k!(q2_0),
        Q2_0G128 | PQ2_0 => k!(q2_0_g128),
        PTQ1_0 => k!(ptq1_0),
        TQ1_0 => k!(tq1_0),
        TQ2_0 => k!(tq2_0),
        Q8_0R => k!(q8_0r),
    }
}

/// The fastest kernels of `ty` on this CPU (chosen once, at first use, by
/// run-time feature detection; see [`simd`]). Every SIMD kernel is tested
/// against the scalar reference of [`scalar_kernels`].
pub fn kernels(ty: GgmlType) -> Kernels {
    simd::kernels(ty)
}

/// Bytes taken by `n` values of `ty`.
pub fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, QuantError> {
    let bs = ty.block_size();
    if !n.is_multiple_of(bs) {
        return Err(QuantError::NotWholeBlocks { ty, n });
    }
    Ok(n / bs * ty.type_size())
}

fn check(ty: GgmlType, n: usize, got: usize) -> Result<(), QuantError> {
    let need = row_bytes(ty, n)?;
    if need != got {
        return Err(QuantError::WrongByteLen { ty, n, need, got });
    }
    Ok(())
}

/// Dequantize `dst.len()` values of `ty` from `src`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check(ty, dst.len(), src.len())?;
    (scalar_kernels(ty).dequantize)(src, dst);
    Ok(())
}

/// Quantize `src` into `dst` as `ty`.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check(ty, src.len(), dst.len())?;
    (scalar_kernels(ty).quantize)(src, dst);
    Ok(())
}

/// Dot product of `n` weights of `ty` with `n` activations already
/// quantized to `ty.vec_dot_type()`.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<f32, QuantError> {
    check(ty, n, w.len())?;
    check(ty.vec_dot_type(), n, a.len())?;
    Ok((scalar_kernels(ty).vec_dot)(w, a))
}

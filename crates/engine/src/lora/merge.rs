//! Merging LoRA adapters into a base model file, as llama.cpp's
//! `tools/export-lora/export-lora.cpp` does: every base tensor the adapters
//! name is dequantized to f32, gets `Σ scale · B·A` added (adapter by
//! adapter, in order) and is written as F32 when the base tensor is F32,
//! else as F16; every other tensor is copied byte for byte. Tensors are
//! written in name order (llama.cpp walks a `std::map`), the metadata is
//! the base's with `general.file_type` set to 1 (mostly F16).
//!
//! Unlike llama-export-lora, which ignores an adapter pair whose base
//! tensor does not exist and aborts on a shape mismatch, both are errors
//! here, naming the file and tensor.

use super::{err, LoraAdapter, LoraWeight};
use crate::error::{EngineError, Result};
use rayon::prelude::*;
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, TensorInfo, Value};
use std::borrow::Cow;
use std::path::Path;

/// What [`export`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeReport {
    pub merged: usize,
    pub copied: usize,
}

/// llama.cpp's `LLAMA_FTYPE_MOSTLY_F16`, the `general.file_type` its
/// export-lora writes whatever the base was.
const FTYPE_MOSTLY_F16: u32 = 1;

/// Writes `base` with `adapters` (each with its user scale) merged in to
/// `out`. `base_label` names the base file in errors.
pub fn export(
    base: &GgufFile,
    base_label: &str,
    adapters: &[(LoraAdapter, f32)],
    out: &Path,
) -> Result<MergeReport> {
    let base_arch = base
        .get("general.architecture")
        .and_then(Value::as_str)
        .unwrap_or("");
    if base.get("split.count").is_some() {
        return Err(err(base_label, "split models are not supported"));
    }
    for (a, _) in adapters {
        if a.arch != base_arch {
            return Err(err(
                &a.label,
                format!(
                    "general.architecture is {:?} but the base model is {base_arch:?}",
                    a.arch
                ),
            ));
        }
        for name in a.weights.keys() {
            if base.tensor(name).is_none() {
                return Err(err(
                    &a.label,
                    format!("tensor `{name}` does not exist in the base model (wrong base model?)"),
                ));
            }
        }
    }
    // A `prism.hadamard`-folded tensor stores rows of `H·S·P·w` (or the
    // embedding's `H·S·e`): adding a delta made for `w` there is wrong.
    let folded: Vec<&str> = [
        crate::hadamard::KEY_WEIGHT_NAMES,
        crate::hadamard::KEY_INVERSE_WEIGHT_NAMES,
    ]
    .into_iter()
    .filter_map(|k| base.get(k).and_then(Value::as_array))
    .flatten()
    .filter_map(Value::as_str)
    .collect();
    for (a, _) in adapters {
        if let Some(name) = a.weights.keys().find(|n| folded.contains(&n.as_str())) {
            return Err(err(
                &a.label,
                format!(
                    "tensor `{name}` is Hadamard-folded in the base model; merging LoRA into \
                     folded tensors is not supported"
                ),
            ));
        }
    }
    // llama.cpp merges several adapters only when they name the same
    // tensors (export-lora.cpp `err_no_subset_adapter`).
    if let Some((first, _)) = adapters.first() {
        for (a, _) in &adapters[1..] {
            if a.weights.len() != first.weights.len()
                || a.weights.keys().any(|k| !first.weights.contains_key(k))
            {
                return Err(err(
                    &a.label,
                    format!(
                        "does not name the same tensors as {}; merge the adapters one by \
                         one instead",
                        first.label
                    ),
                ));
            }
        }
    }

    let mut meta = base.metadata().to_vec();
    match meta.iter_mut().find(|(k, _)| k == "general.file_type") {
        Some(slot) => slot.1 = Value::U32(FTYPE_MOSTLY_F16),
        None => meta.push((
            "general.file_type".to_string(),
            Value::U32(FTYPE_MOSTLY_F16),
        )),
    }
    let mut order: Vec<&TensorInfo> = base.tensors().iter().collect();
    order.sort_by(|a, b| a.name.cmp(&b.name));
    let mut w = GgufWriter::new(meta);
    let mut report = MergeReport {
        merged: 0,
        copied: 0,
    };
    for t in &order {
        let ty = match adapters.first() {
            Some((a, _)) if a.weights.contains_key(&t.name) => {
                for (a, _) in adapters {
                    check_shape(a, t, &a.weights[&t.name])?;
                }
                report.merged += 1;
                if t.ggml_type == GgmlType::F32 {
                    GgmlType::F32
                } else {
                    GgmlType::F16
                }
            }
            _ => {
                report.copied += 1;
                t.ggml_type
            }
        };
        w.add_tensor(t.name.clone(), t.dims.clone(), ty, Vec::new());
    }
    let file =
        std::fs::File::create(out).map_err(|e| err(&out.display().to_string(), e.to_string()))?;
    w.write_streaming(file, |i| -> Result<Cow<'_, [u8]>> {
        let t = order[i];
        match adapters.first() {
            Some((a, _)) if a.weights.contains_key(&t.name) => {
                merge_tensor(base, base_label, t, adapters).map(Cow::Owned)
            }
            _ => Ok(Cow::Borrowed(base.tensor_data(t))),
        }
    })
    .map_err(|e| match e {
        EngineError::Gguf(g) => err(&out.display().to_string(), g.to_string()),
        e => e,
    })?;
    Ok(report)
}

/// The base tensor must be the matrix the pair maps (see lora.rs for the
/// flipped token-embedding pair).
fn check_shape(a: &LoraAdapter, t: &TensorInfo, lw: &LoraWeight) -> Result<()> {
    let (n_in, n_out) = lw.dims();
    let want = if lw.embedding {
        [n_out as u64, n_in as u64]
    } else {
        [n_in as u64, n_out as u64]
    };
    if t.dims != want {
        return Err(err(
            &a.label,
            format!(
                "tensor `{}`: the pair needs a base matrix of dims {want:?} but it has {:?} \
                 (wrong base model?)",
                t.name, t.dims
            ),
        ));
    }
    Ok(())
}

/// The merged bytes of base tensor `t`: `W + Σ scale·ΔW` in f32, then F16
/// unless `t` is F32.
fn merge_tensor(
    base: &GgufFile,
    base_label: &str,
    t: &TensorInfo,
    adapters: &[(LoraAdapter, f32)],
) -> Result<Vec<u8>> {
    let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
    let mut w = vec![0.0f32; rows * cols];
    shohin_quant::dequantize_row(t.ggml_type, base.tensor_data(t), &mut w)
        .map_err(|e| err(base_label, format!("tensor `{}`: {e}", t.name)))?;
    for (a, user_scale) in adapters {
        let lw = &a.weights[&t.name];
        let scale = a.scale(lw, *user_scale);
        let r = lw.rank;
        w.par_chunks_exact_mut(cols)
            .enumerate()
            .for_each(|(row, wrow)| {
                // Row `row` of ΔW, summed over k in order: Σ_k B[row][k]·A[k][c]
                // for a normal pair; for the embedding pair (rows are
                // tokens) Σ_k B[c][k]·A[row][k].
                for (c, wv) in wrow.iter_mut().enumerate() {
                    let mut s = 0.0f32;
                    if lw.embedding {
                        let (x, y) = (&lw.b[c * r..(c + 1) * r], &lw.a[row * r..(row + 1) * r]);
                        for k in 0..r {
                            s += x[k] * y[k];
                        }
                    } else {
                        let x = &lw.b[row * r..(row + 1) * r];
                        for (k, xk) in x.iter().enumerate() {
                            s += xk * lw.a[k * cols + c];
                        }
                    }
                    // llama.cpp: cur = scale(delta) + cur, in f32.
                    *wv += s * scale;
                }
            });
    }
    Ok(if t.ggml_type == GgmlType::F32 {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    } else {
        w.iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect()
    })
}

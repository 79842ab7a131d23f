//! `shohin quantize`: re-quantizes a GGUF file the way llama.cpp's
//! `llama-quantize` does, byte for byte.
//!
//! - **Which tensors, which type**: the rules of llama.cpp's
//!   `src/llama-quant.cpp` (`tensor_allows_quantization`,
//!   `llama_tensor_get_type_impl`, `tensor_type_fallback`) for the file types
//!   in [`FTYPES`]: 1-D tensors, norms and a few special tensors keep their
//!   type; the output tensor (and the token embedding when the model ties
//!   them) goes to `Q6_K`, or `Q8_0` when its rows are not a whole number of
//!   the target's blocks; the `_S` / `_M` mixes promote some `attn_v` and
//!   `ffn_down` layers; a row that is not a whole number of blocks falls back
//!   to a smaller block type, then to F16.
//! - **The bits**: without an importance matrix, ggml's `ggml_quantize_chunk`
//!   calls `quantize_row_*_ref` for every type here (the K-quants included:
//!   `quantize_q4_K` etc. only take another path with an imatrix), and those
//!   are [`shohin_quant::scalar_kernels`]' `quantize`, bit-exact. Quantized
//!   inputs (with `allow_requantize`) are dequantized to f32 first.
//! - **PrismML's g128 layouts** (`Q2_0_G128`: type 42 with 128-weight
//!   blocks; `PQ2_0`: type 142, the same bytes) have no llama-quantize to
//!   match: their blocks are written with BitNet b1.58's absmean rule
//!   ([`shohin_quant::quantize_row_g128_absmean`]), not ggml's max-abs
//!   reference. Their tensor rules are the `Q2_0` target's (output / tied
//!   embedding to `Q6_K`, token embedding to `Q4_K`, 1-D tensors kept); a
//!   row that is not a multiple of 128 falls back to `Q4_0`, then F16, and
//!   so does a `Q2_0_G128` tensor too small to be told from g64 `Q2_0` by
//!   its byte size (under about 2048 values; see `GgmlType::resolve`).
//! - **The file**: all metadata kept in order, `general.quantization_version`
//!   (2) and `general.file_type` moved to the end with their new values, split
//!   keys dropped; tensors in llama.cpp's order (by layer number, then name),
//!   1-D-trailing dimensions trimmed as `ggml_n_dims` does, GGUF v3.

mod rules;

pub use rules::plan;
use std::borrow::Cow;
use std::path::Path;

use rayon::prelude::*;
use shohin_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

/// `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub const QNT_VERSION: u32 = 2;

/// One target of llama-quantize (`QUANT_OPTIONS` in tools/quantize): its name,
/// its `llama_ftype` id (written as `general.file_type`) and the default
/// tensor type (`llama_ftype_get_default_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ftype {
    pub name: &'static str,
    pub id: u32,
    pub default_type: GgmlType,
}

const fn ft(name: &'static str, id: u32, default_type: GgmlType) -> Ftype {
    Ftype {
        name,
        id,
        default_type,
    }
}

/// The supported targets, in llama-quantize's listing order. `Q4_K` and
/// `Q5_K` are its aliases of `Q4_K_M` and `Q5_K_M`.
pub const FTYPES: &[Ftype] = &[
    ft("Q1_0", 40, GgmlType::Q1_0),
    ft("Q2_0", 41, GgmlType::Q2_0),
    // Neither upstream llama.cpp nor PrismML's fork has an ftype for type 42
    // with 128-weight blocks; the fork (include/llama.h) has
    // LLAMA_FTYPE_MOSTLY_PQ2_0 = 141 and LLAMA_FTYPE_MOSTLY_PQ2_0_LEGACY = 142,
    // "pre-rename value for the same format" (the g128 layout was called
    // Q2_0_G128 before it became PQ2_0), so the legacy id names it here.
    ft("Q2_0_G128", 142, GgmlType::Q2_0G128),
    ft("PQ2_0", 141, GgmlType::PQ2_0),
    ft("Q4_0", 2, GgmlType::Q4_0),
    ft("Q5_0", 8, GgmlType::Q5_0),
    ft("TQ1_0", 36, GgmlType::TQ1_0),
    ft("TQ2_0", 37, GgmlType::TQ2_0),
    ft("Q4_K", 15, GgmlType::Q4K),
    ft("Q4_K_S", 14, GgmlType::Q4K),
    ft("Q4_K_M", 15, GgmlType::Q4K),
    ft("Q5_K", 17, GgmlType::Q5K),
    ft("Q5_K_S", 16, GgmlType::Q5K),
    ft("Q5_K_M", 17, GgmlType::Q5K),
    ft("Q6_K", 18, GgmlType::Q6K),
    ft("Q8_0", 7, GgmlType::Q8_0),
    ft("F16", 1, GgmlType::F16),
    ft("BF16", 32, GgmlType::BF16),
    ft("F32", 0, GgmlType::F32),
];

mod id {
    pub const Q4_K_S: u32 = 14;
    pub const Q4_K_M: u32 = 15;
    pub const Q5_K_M: u32 = 17;
    pub const Q2_0: u32 = 41;
    pub const PQ2_0: u32 = 141;
    pub const Q2_0_G128: u32 = 142;
    pub const TQ1_0: u32 = 36;
    pub const TQ2_0: u32 = 37;
}

impl Ftype {
    /// Parses a target the way llama-quantize does: a name, case-insensitive,
    /// or the numeric ftype id. Aliases resolve to their full name.
    pub fn parse(s: &str) -> Result<Ftype, QuantizeError> {
        let s = s.trim();
        let found = FTYPES
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(s))
            .or_else(|| {
                let n: u32 = s.parse().ok()?;
                FTYPES.iter().find(|f| f.id == n)
            });
        match found {
            // the aliases Q4_K / Q5_K report their full name
            Some(f) => Ok(*FTYPES
                .iter()
                .find(|g| g.id == f.id && g.name.len() > f.name.len() && g.name.starts_with(f.name))
                .unwrap_or(f)),
            None => Err(QuantizeError::UnknownType {
                name: s.to_owned(),
                valid: FTYPES.iter().map(|f| f.name).collect::<Vec<_>>().join(", "),
            }),
        }
    }
}

/// Errors, each naming the file or tensor concerned.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("unknown quantization type '{name}' (valid: {valid})")]
    UnknownType { name: String, valid: String },
    #[error(
        "{tensor}: requantizing from type {from} is disabled (the input is already quantized; \
         pass --allow-requantize to dequantize and quantize it again)"
    )]
    Requantize { tensor: String, from: GgmlType },
    #[error("{tensor}: ne[0] = {ncols} is not a multiple of the {ty} block size and no fallback type is defined for it")]
    NoFallback {
        tensor: String,
        ty: GgmlType,
        ncols: u64,
    },
    #[error("{tensor}: cannot determine the layer from the name")]
    NoLayer { tensor: String },
    #[error("{0}")]
    Gguf(#[from] GgufError),
    #[error("{tensor}: {msg}")]
    Tensor { tensor: String, msg: String },
}

/// Options of one run.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub ftype: Ftype,
    pub allow_requantize: bool,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
}

/// What happens to one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    /// Index in the input file.
    pub index: usize,
    pub name: String,
    /// As written: ggml order, trailing 1s trimmed like `ggml_n_dims`.
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
}

/// The quantizer used for `to`: ggml's reference, except PrismML's g128
/// layouts, which get the absmean rule (they have no ggml reference to match).
pub fn quantizer(to: GgmlType) -> shohin_quant::QuantizeFn {
    match to {
        GgmlType::Q2_0G128 | GgmlType::PQ2_0 => shohin_quant::quantize_row_g128_absmean,
        _ => shohin_quant::scalar_kernels(to).quantize,
    }
}

/// Converts one tensor's bytes from `from` to `to` (rows of `ne0` values),
/// on the current rayon pool, with [`quantizer`]`(to)`. Identical types copy
/// the bytes.
pub fn convert_tensor<'a>(
    from: GgmlType,
    to: GgmlType,
    data: &'a [u8],
    ne0: usize,
) -> Result<Cow<'a, [u8]>, shohin_quant::QuantError> {
    if from == to {
        return Ok(Cow::Borrowed(data));
    }
    let src_row = shohin_quant::row_bytes(from, ne0)?;
    let dst_row = shohin_quant::row_bytes(to, ne0)?;
    let nrows = data.len() / src_row.max(1);
    let mut out = vec![0u8; nrows * dst_row];
    // rows per task: about 64 Ki values, so small tensors still split
    let rows_per = (65536 / ne0.max(1)).max(1);
    let deq = shohin_quant::scalar_kernels(from).dequantize;
    let q = quantizer(to);
    out.par_chunks_mut(rows_per * dst_row)
        .zip(data.par_chunks(rows_per * src_row))
        .for_each(|(dst, src)| {
            let n = src.len() / src_row * ne0;
            let mut f = vec![0f32; n];
            if from == GgmlType::F32 {
                for (x, b) in f.iter_mut().zip(src.chunks_exact(4)) {
                    *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            } else {
                deq(src, &mut f);
            }
            q(&f, dst);
        });
    Ok(Cow::Owned(out))
}

/// The result of [`quantize_file`].
#[derive(Clone, Debug)]
pub struct Summary {
    pub tensors: Vec<TensorPlan>,
    /// Tensor bytes in and out (without padding).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bytes of the written file.
    pub file_size: u64,
}

/// The output metadata: the input's, split keys dropped,
/// `general.quantization_version` and `general.file_type` set at the end
/// (gguf's `set_val` removes then appends).
pub fn output_metadata(file: &GgufFile, ftype: Ftype) -> Vec<(String, Value)> {
    const DROP: [&str; 5] = [
        "general.quantization_version",
        "general.file_type",
        "split.no",
        "split.count",
        "split.tensors.count",
    ];
    let mut md: Vec<(String, Value)> = file
        .metadata()
        .iter()
        .filter(|(k, _)| !DROP.contains(&k.as_str()))
        .cloned()
        .collect();
    md.push((
        "general.quantization_version".into(),
        Value::U32(QNT_VERSION),
    ));
    md.push(("general.file_type".into(), Value::U32(ftype.id)));
    md
}

/// Quantizes `input` into `output`. `on_tensor(i, plan)` is called after each
/// tensor is converted (for progress and the per-tensor summary). The
/// converted tensors are held in memory until the file is written.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    opts: &Options,
    mut on_tensor: impl FnMut(usize, &TensorPlan),
) -> Result<Summary, QuantizeError> {
    let file = GgufFile::open(input)?;
    let plans = plan(&file, opts)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| QuantizeError::Tensor {
            tensor: "thread pool".into(),
            msg: e.to_string(),
        })?;
    let mut w = GgufWriter::new(output_metadata(&file, opts.ftype));
    let (mut bytes_in, mut bytes_out) = (0u64, 0u64);
    for (i, p) in plans.iter().enumerate() {
        let t = &file.tensors()[p.index];
        let data = file.tensor_data(t);
        let conv = pool
            .install(|| convert_tensor(p.from, p.to, data, t.dims[0] as usize))
            .map_err(|e| QuantizeError::Tensor {
                tensor: p.name.clone(),
                msg: e.to_string(),
            })?;
        bytes_in += data.len() as u64;
        bytes_out += conv.len() as u64;
        w.add_tensor(p.name.clone(), p.dims.clone(), p.to, conv);
        on_tensor(i, p);
    }
    let file_size = w.write_to_path(output).map_err(|e| QuantizeError::Tensor {
        tensor: output.display().to_string(),
        msg: e.to_string(),
    })?;
    Ok(Summary {
        tensors: plans,
        bytes_in,
        bytes_out,
        file_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::*;

    #[test]
    fn parse_names() {
        assert_eq!(Ftype::parse("q4_k_m").unwrap().id, 15);
        assert_eq!(Ftype::parse("Q4_K").unwrap().name, "Q4_K_M");
        assert_eq!(Ftype::parse("q5_k").unwrap().name, "Q5_K_M");
        assert_eq!(Ftype::parse("7").unwrap().name, "Q8_0");
        assert_eq!(Ftype::parse("tq1_0").unwrap().default_type, GgmlType::TQ1_0);
        let e = Ftype::parse("Q3_XL").unwrap_err().to_string();
        assert!(
            e.contains("Q3_XL") && e.contains("Q4_K_M") && e.contains("TQ2_0"),
            "{e}"
        );
    }

    #[test]
    fn one_d_and_norms_stay() {
        assert!(!allows_quantization("blk.0.attn_q.bias", &[896]));
        assert!(!allows_quantization("blk.0.attn_norm.weight", &[896]));
        assert!(!allows_quantization("blk.0.attn_q.weight", &[896, 1]));
        assert!(!allows_quantization("blk.0.ffn_gate_inp.weight", &[896, 8]));
        assert!(allows_quantization("blk.0.attn_q.weight", &[896, 896]));
    }

    #[test]
    fn order_and_layers() {
        assert_eq!(layer_of("blk.12.ffn_up.weight"), Some(12));
        assert_eq!(layer_of("output.weight"), None);
        assert!(use_more_bits(0, 24) && use_more_bits(23, 24) && !use_more_bits(3, 24));
        assert!(use_more_bits(5, 24));
    }

    #[test]
    fn fallbacks() {
        use GgmlType::*;
        assert_eq!(fallback("t", 896, Q4K).unwrap(), Q5_0);
        assert_eq!(fallback("t", 896, Q6K).unwrap(), Q8_0);
        assert_eq!(fallback("t", 896, Q5K).unwrap(), Q5_1);
        assert_eq!(fallback("t", 100, Q5K).unwrap(), F16);
        assert_eq!(fallback("t", 896, TQ2_0).unwrap(), Q4_0);
        assert_eq!(fallback("t", 100, Q8_0).unwrap(), F16);
        assert_eq!(fallback("t", 1024, Q4K).unwrap(), Q4K);
        assert!(fallback("t", 96, Q1_0).is_err());
        assert_eq!(fallback("t", 1024, Q2_0G128).unwrap(), Q2_0G128);
        assert_eq!(fallback("t", 832, PQ2_0).unwrap(), Q4_0);
        assert_eq!(fallback("t", 960, Q2_0G128).unwrap(), Q4_0);
        assert_eq!(fallback("t", 100, PQ2_0).unwrap(), F16);
    }

    #[test]
    fn small_g128_tensors_would_read_as_g64() {
        // 1024 values: 272 bytes in a 288-byte slot, where g64's 288 fit
        assert!(g64_ambiguous(128, 32) && g64_ambiguous(1024, 32));
        assert!(!g64_ambiguous(2048, 32) && !g64_ambiguous(256 * 768, 32));
    }

    #[test]
    fn g128_targets() {
        for (name, id, ty) in [
            ("q2_0_g128", 142, GgmlType::Q2_0G128),
            ("PQ2_0", 141, GgmlType::PQ2_0),
            ("pq2_0", 141, GgmlType::PQ2_0),
        ] {
            let f = Ftype::parse(name).unwrap();
            assert_eq!((f.id, f.default_type), (id, ty), "{name}");
        }
        assert_eq!(Ftype::parse("Q2_0").unwrap().default_type, GgmlType::Q2_0);
        assert_eq!(Ftype::parse("141").unwrap().name, "PQ2_0");
        use shohin_quant::QuantizeFn;
        let absmean: QuantizeFn = shohin_quant::quantize_row_g128_absmean;
        for ty in [GgmlType::Q2_0G128, GgmlType::PQ2_0] {
            assert!(std::ptr::fn_addr_eq(quantizer(ty), absmean));
        }
        let reference = shohin_quant::scalar_kernels(GgmlType::Q2_0).quantize;
        assert!(std::ptr::fn_addr_eq(quantizer(GgmlType::Q2_0), reference));
    }
}

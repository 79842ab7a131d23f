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
//! - **The file**: all metadata kept in order, `general.quantization_version`
//!   (2) and `general.file_type` moved to the end with their new values, split
//!   keys dropped; tensors in llama.cpp's order (by layer number, then name),
//!   1-D-trailing dimensions trimmed as `ggml_n_dims` does, GGUF v3.

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
    #[error(
        "{tensor}: its rows of {ncols} are not a multiple of the {ty} block, and llama-quantize's \
         fallback {name} is not implemented in shohin (choose another type, e.g. Q4_K_M or Q6_K)"
    )]
    UnsupportedFallback {
        tensor: String,
        ty: GgmlType,
        ncols: u64,
        name: &'static str,
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

/// The broad tensor categories of llama-quant.cpp's `tensor_get_category`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

fn category(name: &str) -> Category {
    use Category::*;
    if name == "output.weight" {
        return Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return TokenEmbd;
    }
    let table = [
        ("attn_qkv.weight", AttnQkv),
        ("attn_kv_b.weight", AttnKvB),
        ("attn_v.weight", AttnV),
        ("attn_k.weight", AttnK),
        ("attn_q.weight", AttnQ),
        ("attn_output.weight", AttnOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ];
    table
        .iter()
        .find(|(pat, _)| name.contains(pat))
        .map_or(Other, |&(_, c)| c)
}

/// `ggml_n_dims`: the number of dimensions up to the last one above 1.
fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// The layer of `blk.N.…` (`sscanf(name, "blk.%d.")`), -1 otherwise.
fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// `tensor_allows_quantization` (without the GLM5-next special cases).
fn allows_quantization(name: &str, dims: &[u64]) -> bool {
    if n_dims(dims) < 2 || !name.ends_with("weight") || name.contains("_norm.weight") {
        return false;
    }
    const NEVER: &[&str] = &[
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    name != "position_embd.weight"
        && name != "token_types.weight"
        && !NEVER.iter().any(|p| name.contains(p))
}

fn is_quantized(t: GgmlType) -> bool {
    !matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// The model facts the type rules look at.
struct Model {
    falcon: bool,
    n_expert: u32,
    n_layer: i64,
    tied: bool,
    n_attention_wv: i64,
}

/// The running counters of llama-quant.cpp's `quantize_state_impl`.
#[derive(Default)]
struct Counters {
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `llama_tensor_get_type_impl` for the supported file types.
fn type_rules(
    m: &Model,
    c: &mut Counters,
    ft: Ftype,
    mut new: GgmlType,
    name: &str,
    ne0: u64,
    cat: Category,
) -> Result<GgmlType, QuantizeError> {
    use Category::*;
    use GgmlType::*;
    let f = ft.id;
    let layer = |i: i64, n: i64| -> Result<(i64, i64), QuantizeError> {
        if m.n_expert > 1 {
            let l = layer_of(name).ok_or_else(|| QuantizeError::NoLayer {
                tensor: name.to_owned(),
            })?;
            if l < 0 || l >= n {
                return Err(QuantizeError::NoLayer {
                    tensor: name.to_owned(),
                });
            }
            return Ok((l, n));
        }
        Ok((i, n))
    };
    if cat == Output || (m.tied && cat == TokenEmbd) {
        if m.falcon || !ne0.is_multiple_of(new.block_size() as u64) {
            new = Q8_0;
        } else if new != Q8_0 {
            new = Q6K;
        }
    } else if cat == TokenEmbd {
        if f == id::TQ1_0 || f == id::TQ2_0 || f == id::Q2_0 {
            new = Q4K;
        }
    } else if matches!(cat, AttnV | AttnQkv | AttnKvB) {
        if (f == id::Q4_K_M || f == id::Q5_K_M) && use_more_bits(c.i_attention_wv, m.n_attention_wv)
        {
            new = Q6K;
        } else if f == id::Q4_K_S && c.i_attention_wv < 4 {
            new = Q5K;
        }
        if m.n_expert == 8 {
            new = Q8_0;
        }
        c.i_attention_wv += 1;
    } else if cat == AttnK {
        if m.n_expert == 8 {
            new = Q8_0;
        }
    } else if cat == AttnQ {
        // only IQ3 mixes change it
    } else if cat == FfnDown {
        let (i, n) = layer(c.i_ffn_down, m.n_layer)?;
        if f == id::Q4_K_M {
            if m.falcon {
                new = if i < n / 16 {
                    Q6K
                } else if use_more_bits(i, n) {
                    Q5K
                } else {
                    Q4K
                };
            } else if use_more_bits(i, n) {
                new = Q6K;
            }
        } else if f == id::Q5_K_M && use_more_bits(i, n) {
            new = Q6K;
        } else if f == id::Q4_K_S && !m.falcon && i < n / 8 {
            new = Q5K;
        }
        c.i_ffn_down += 1;
    } else if cat == AttnOutput {
        if !m.falcon && m.n_expert == 8 && (f == id::Q4_K_S || f == id::Q4_K_M) {
            new = Q5K;
        }
    } else if cat == FfnGate {
        layer(c.i_ffn_gate, m.n_layer)?;
        c.i_ffn_gate += 1;
    } else if cat == FfnUp {
        layer(c.i_ffn_up, m.n_layer)?;
        c.i_ffn_up += 1;
    }
    Ok(new)
}

/// `tensor_type_fallback`: a row that is not a whole number of blocks.
fn fallback(name: &str, ne0: u64, target: GgmlType) -> Result<GgmlType, QuantizeError> {
    use GgmlType::*;
    let bs = target.block_size() as u64;
    if ne0.is_multiple_of(bs) {
        return Ok(target);
    }
    let ret = match target {
        Q2_0 | TQ1_0 | TQ2_0 => Q4_0,
        Q4K => Q5_0,
        Q5K => {
            return Err(QuantizeError::UnsupportedFallback {
                tensor: name.to_owned(),
                ty: target,
                ncols: ne0,
                name: "Q5_1",
            })
        }
        Q6K => Q8_0,
        _ if bs <= 32 => target,
        _ => {
            return Err(QuantizeError::NoFallback {
                tensor: name.to_owned(),
                ty: target,
                ncols: ne0,
            })
        }
    };
    if !ne0.is_multiple_of(ret.block_size() as u64) {
        return Ok(F16);
    }
    Ok(ret)
}

/// llama.cpp's tensor order (`weight_name_comparer`): by layer number
/// (-1 for tensors outside `blk.N.`), then by name.
fn llama_order(file: &GgufFile) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..file.tensors().len()).collect();
    let key = |i: &usize| {
        let name = file.tensors()[*i].name.as_str();
        (layer_of(name).unwrap_or(-1), name)
    };
    idx.sort_by(|a, b| key(a).cmp(&key(b)));
    idx
}

fn model_facts(file: &GgufFile) -> Model {
    let arch = file
        .get_str("general.architecture")
        .unwrap_or("")
        .to_owned();
    let get = |k: &str| file.get_u32(&format!("{arch}.{k}")).ok();
    let tied = !file.tensors().iter().any(|t| t.name == "output.weight");
    let n_attention_wv = file
        .tensors()
        .iter()
        .filter(|t| {
            matches!(
                category(&t.name),
                Category::AttnV | Category::AttnQkv | Category::AttnKvB
            )
        })
        .count() as i64;
    Model {
        falcon: arch == "falcon",
        n_expert: get("expert_count").unwrap_or(0),
        n_layer: get("block_count").unwrap_or(0).into(),
        tied,
        n_attention_wv,
    }
}

/// Chooses every tensor's output type, in output order; checks
/// requantization. Nothing is written.
pub fn plan(file: &GgufFile, opts: &Options) -> Result<Vec<TensorPlan>, QuantizeError> {
    let m = model_facts(file);
    let mut c = Counters::default();
    let mut out = Vec::new();
    for i in llama_order(file) {
        let t = &file.tensors()[i];
        let nd = n_dims(&t.dims);
        let dims = t.dims[..nd].to_vec();
        let mut to = t.ggml_type;
        if allows_quantization(&t.name, &t.dims) {
            to = opts.ftype.default_type;
            if is_quantized(to) {
                to = type_rules(
                    &m,
                    &mut c,
                    opts.ftype,
                    to,
                    &t.name,
                    t.dims[0],
                    category(&t.name),
                )?;
                to = fallback(&t.name, t.dims[0], to)?;
            }
        }
        if to != t.ggml_type && is_quantized(t.ggml_type) && !opts.allow_requantize {
            return Err(QuantizeError::Requantize {
                tensor: t.name.clone(),
                from: t.ggml_type,
            });
        }
        out.push(TensorPlan {
            index: i,
            name: t.name.clone(),
            dims,
            from: t.ggml_type,
            to,
        });
    }
    Ok(out)
}

/// Converts one tensor's bytes from `from` to `to` (rows of `ne0` values),
/// on the current rayon pool. Identical types copy the bytes.
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
    let q = shohin_quant::scalar_kernels(to).quantize;
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
        assert_eq!(fallback("t", 896, TQ2_0).unwrap(), Q4_0);
        assert_eq!(fallback("t", 100, Q8_0).unwrap(), F16);
        assert_eq!(fallback("t", 1024, Q4K).unwrap(), Q4K);
        assert!(fallback("t", 96, Q1_0).is_err());
    }
}

//! Which type each tensor gets: llama.cpp's `src/llama-quant.cpp`
//! (`tensor_allows_quantization`, `llama_tensor_get_type_impl`,
//! `tensor_type_fallback`), tensor by tensor in its order.

use crate::{id, Ftype, Options, QuantizeError, TensorPlan};
use shohin_gguf::{GgmlType, GgufFile};

/// The broad tensor categories of llama-quant.cpp's `tensor_get_category`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
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

pub(crate) fn category(name: &str) -> Category {
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
pub(crate) fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// The layer of `blk.N.…` (`sscanf(name, "blk.%d.")`), -1 otherwise.
pub(crate) fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let end = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+'))))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// `tensor_allows_quantization` (without the GLM5-next special cases).
pub(crate) fn allows_quantization(name: &str, dims: &[u64]) -> bool {
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

pub(crate) fn is_quantized(t: GgmlType) -> bool {
    !matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// The model facts the type rules look at.
pub(crate) struct Model {
    falcon: bool,
    n_expert: u32,
    n_layer: i64,
    tied: bool,
    n_attention_wv: i64,
}

/// The running counters of llama-quant.cpp's `quantize_state_impl`.
#[derive(Default)]
pub(crate) struct Counters {
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

pub(crate) fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// `llama_tensor_get_type_impl` for the supported file types.
pub(crate) fn type_rules(
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
        // PrismML's g128 targets follow the ternary ones (not llama-quantize)
        if [id::TQ1_0, id::TQ2_0, id::Q2_0, id::Q2_0_G128, id::PQ2_0].contains(&f) {
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
pub(crate) fn fallback(name: &str, ne0: u64, target: GgmlType) -> Result<GgmlType, QuantizeError> {
    use GgmlType::*;
    let bs = target.block_size() as u64;
    if ne0.is_multiple_of(bs) {
        return Ok(target);
    }
    let ret = match target {
        Q2_0 | Q2_0G128 | PQ2_0 | TQ1_0 | TQ2_0 => Q4_0,
        Q4K => Q5_0,
        Q5K => Q5_1,
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

/// Whether `n` values of type 42 in the g128 layout would be read back as
/// g64 `Q2_0` (whose bytes then fit the tensor's aligned slot, see
/// `GgmlType::resolve`): true below about 2048 values.
pub(crate) fn g64_ambiguous(n: u64, alignment: u64) -> bool {
    let g128 = n.div_ceil(128) * 34;
    let slot = g128.div_ceil(alignment) * alignment;
    n.div_ceil(64) * 18 <= slot
}

/// llama.cpp's tensor order (`weight_name_comparer`): by layer number
/// (-1 for tensors outside `blk.N.`), then by name.
pub(crate) fn llama_order(file: &GgufFile) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..file.tensors().len()).collect();
    let key = |i: &usize| {
        let name = file.tensors()[*i].name.as_str();
        (layer_of(name).unwrap_or(-1), name)
    };
    idx.sort_by(|a, b| key(a).cmp(&key(b)));
    idx
}

pub(crate) fn model_facts(file: &GgufFile) -> Model {
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
    let alignment = u64::from(file.get_u32("general.alignment").unwrap_or(32).max(1));
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
                // rows are whole g128 blocks here, so whole Q4_0 blocks too
                if to == GgmlType::Q2_0G128 && g64_ambiguous(t.dims.iter().product(), alignment) {
                    to = GgmlType::Q4_0;
                }
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

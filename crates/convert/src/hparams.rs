//! `config.json`: the model hyperparameters, and the GGUF metadata they give
//! (in convert_hf_to_gguf.py's order), shared by the safetensors and ONNX
//! paths.

use std::path::Path;

use serde_json::Value as Json;
use shohin_gguf::Value;

use crate::{key_err, ConvertError, QNT_VERSION};

/// The model hyperparameters of `config.json`.
#[derive(Clone, Debug)]
pub(crate) struct Hparams {
    pub(crate) arch: &'static str,
    pub(crate) n_layer: usize,
    pub(crate) n_ctx: Option<u64>,
    pub(crate) n_embd: usize,
    pub(crate) n_ff: usize,
    pub(crate) n_head: usize,
    pub(crate) n_head_kv: usize,
    pub(crate) head_dim: usize,
    pub(crate) head_dim_explicit: bool,
    pub(crate) rope_theta: Option<f64>,
    pub(crate) rms_eps: f64,
    pub(crate) vocab_size: Option<usize>,
    pub(crate) tied: bool,
    /// `rope_scaling` / `rope_parameters` of type `linear`: its factor
    /// (`{arch}.rope.scaling.type` / `.factor`); other types are refused.
    pub(crate) rope_linear_factor: Option<f64>,
}

fn uint(cfg: &Json, path: &Path, key: &str) -> Result<Option<usize>, ConvertError> {
    match cfg.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .map(|n| Some(n as usize))
            .ok_or_else(|| key_err(path, key, format!("{v} is not a positive integer"))),
    }
}

fn need_uint(cfg: &Json, path: &Path, key: &str) -> Result<usize, ConvertError> {
    uint(cfg, path, key)?.ok_or_else(|| key_err(path, key, "missing"))
}

pub(crate) fn hparams(cfg: &Json, path: &Path) -> Result<Hparams, ConvertError> {
    let archs = cfg
        .get("architectures")
        .and_then(Json::as_array)
        .ok_or_else(|| key_err(path, "architectures", "missing"))?;
    let first = archs.first().and_then(Json::as_str).unwrap_or("");
    let arch = match first {
        "Qwen3ForCausalLM" => "qwen3",
        "Qwen2ForCausalLM" => "qwen2",
        "LlamaForCausalLM" => "llama",
        _ => {
            return Err(key_err(
                path,
                "architectures",
                format!(
                    "unsupported architecture {first:?} (supported: Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM)"
                ),
            ))
        }
    };
    // the converter reads config.json through transformers' AutoConfig,
    // whose LlamaConfig fills in these defaults (and always a head_dim)
    let llama = arch == "llama";
    let n_embd = need_uint(cfg, path, "hidden_size")?;
    let n_head = need_uint(cfg, path, "num_attention_heads")?;
    let n_head_kv = uint(cfg, path, "num_key_value_heads")?.unwrap_or(n_head);
    let head_dim_cfg = uint(cfg, path, "head_dim")?;
    if head_dim_cfg.is_none() && n_embd % n_head != 0 {
        return Err(key_err(
            path,
            "head_dim",
            "missing, and hidden_size is not a multiple of num_attention_heads",
        ));
    }
    if n_head % n_head_kv != 0 {
        return Err(key_err(
            path,
            "num_key_value_heads",
            format!("{n_head_kv} does not divide num_attention_heads {n_head}"),
        ));
    }
    // rope_theta at the top level, or in rope_parameters (transformers 5)
    let rope_theta = match cfg.get("rope_theta") {
        Some(v) if !v.is_null() => Some(v),
        _ => cfg.get("rope_parameters").and_then(|r| r.get("rope_theta")),
    };
    let rope_theta = match rope_theta {
        None if llama => Some(10000.0),
        None => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| key_err(path, "rope_theta", format!("{v} is not a number")))?,
        ),
    };
    let rope_linear_factor = rope_scaling(cfg, path)?;
    let rms_eps = match cfg.get("rms_norm_eps") {
        None if llama => &Json::from(1e-6),
        v => v.ok_or_else(|| key_err(path, "rms_norm_eps", "missing"))?,
    };
    let rms_eps = rms_eps.as_f64().filter(|e| *e > 0.0).ok_or_else(|| {
        key_err(
            path,
            "rms_norm_eps",
            format!("{rms_eps} is not a positive number"),
        )
    })?;
    Ok(Hparams {
        arch,
        n_layer: need_uint(cfg, path, "num_hidden_layers")?,
        n_ctx: uint(cfg, path, "max_position_embeddings")?
            .or(if llama { Some(2048) } else { None })
            .map(|n| n as u64),
        n_embd,
        n_ff: need_uint(cfg, path, "intermediate_size")?,
        n_head,
        n_head_kv,
        head_dim: head_dim_cfg.unwrap_or(n_embd / n_head),
        head_dim_explicit: head_dim_cfg.is_some() || llama,
        rope_theta,
        rms_eps,
        vocab_size: uint(cfg, path, "vocab_size")?.or(if llama { Some(32000) } else { None }),
        tied: cfg
            .get("tie_word_embeddings")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        rope_linear_factor,
    })
}

/// The RoPE scaling of `rope_parameters` (else `rope_scaling`) as
/// `TextModel.set_gguf_parameters` reads it: no type (or `default`) is
/// none, `linear` with a factor writes `rope.scaling.*`; `llama3` (whose
/// `rope_freqs.weight` the converter computes), `yarn`, `longrope` and the
/// others are refused rather than converted differently.
fn rope_scaling(cfg: &Json, path: &Path) -> Result<Option<f64>, ConvertError> {
    let (key, r) = match (cfg.get("rope_parameters"), cfg.get("rope_scaling")) {
        (Some(r), _) if !r.is_null() => ("rope_parameters", r),
        (_, Some(r)) if !r.is_null() => ("rope_scaling", r),
        _ => return Ok(None),
    };
    let r = r.get("full_attention").unwrap_or(r);
    let ty = match r.get("rope_type").or_else(|| r.get("type")) {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::String(t)) => t.as_str(),
        Some(v) => return Err(key_err(path, key, format!("rope_type {v} is not a string"))),
    };
    let factor = r.get("factor").filter(|f| !f.is_null());
    match ty {
        "default" => Ok(None),
        "linear" => match factor {
            None => Ok(None),
            Some(f) => f
                .as_f64()
                .map(Some)
                .ok_or_else(|| key_err(path, key, format!("factor {f} is not a number"))),
        },
        _ => Err(key_err(
            path,
            key,
            format!("RoPE scaling type {ty:?} is not supported (only linear)"),
        )),
    }
}

/// The model metadata (without the tokenizer), in convert_hf_to_gguf.py's
/// order; `general.name` is the directory's name.
pub(crate) fn model_metadata(h: &Hparams, dir: &Path, file_type: u32) -> Vec<(String, Value)> {
    let arch = h.arch;
    let k = |s: &str| format!("{arch}.{s}");
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.type".into(), Value::String("model".into())),
        ("general.name".into(), Value::String(dir_name)),
        (k("block_count"), Value::U32(h.n_layer as u32)),
    ];
    if let Some(n) = h.n_ctx {
        md.push((k("context_length"), Value::U32(n as u32)));
    }
    md.push((k("embedding_length"), Value::U32(h.n_embd as u32)));
    md.push((k("feed_forward_length"), Value::U32(h.n_ff as u32)));
    md.push((k("attention.head_count"), Value::U32(h.n_head as u32)));
    md.push((k("attention.head_count_kv"), Value::U32(h.n_head_kv as u32)));
    if let Some(f) = h.rope_linear_factor {
        md.push((k("rope.scaling.type"), Value::String("linear".into())));
        md.push((k("rope.scaling.factor"), Value::F32(f as f32)));
    }
    if let Some(t) = h.rope_theta {
        md.push((k("rope.freq_base"), Value::F32(t as f32)));
    }
    md.push((
        k("attention.layer_norm_rms_epsilon"),
        Value::F32(h.rms_eps as f32),
    ));
    if h.head_dim_explicit {
        md.push((k("attention.key_length"), Value::U32(h.head_dim as u32)));
        md.push((k("attention.value_length"), Value::U32(h.head_dim as u32)));
    }
    md.push(("general.file_type".into(), Value::U32(file_type)));
    if arch == "llama" {
        // LlamaModel.set_gguf_parameters, after the common keys
        if let Some(n) = h.vocab_size {
            md.push((k("vocab_size"), Value::U32(n as u32)));
        }
        md.push((k("rope.dimension_count"), Value::U32(h.head_dim as u32)));
    }
    md.push((
        "general.quantization_version".into(),
        Value::U32(QNT_VERSION),
    ));
    md
}

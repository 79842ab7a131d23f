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
        _ => {
            return Err(key_err(
                path,
                "architectures",
                format!(
                    "unsupported architecture {first:?} (supported: Qwen3ForCausalLM, Qwen2ForCausalLM)"
                ),
            ))
        }
    };
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
        None => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| key_err(path, "rope_theta", format!("{v} is not a number")))?,
        ),
    };
    let rms_eps = cfg
        .get("rms_norm_eps")
        .ok_or_else(|| key_err(path, "rms_norm_eps", "missing"))?;
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
        n_ctx: uint(cfg, path, "max_position_embeddings")?.map(|n| n as u64),
        n_embd,
        n_ff: need_uint(cfg, path, "intermediate_size")?,
        n_head,
        n_head_kv,
        head_dim: head_dim_cfg.unwrap_or(n_embd / n_head),
        head_dim_explicit: head_dim_cfg.is_some(),
        rope_theta,
        rms_eps,
        vocab_size: uint(cfg, path, "vocab_size")?,
        tied: cfg
            .get("tie_word_embeddings")
            .and_then(Json::as_bool)
            .unwrap_or(false),
    })
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
    md.push((
        "general.quantization_version".into(),
        Value::U32(QNT_VERSION),
    ));
    md
}

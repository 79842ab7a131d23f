//! Hyperparameters read from GGUF metadata (`{arch}.*` keys, see llama.cpp's
//! `llama-model.cpp` `load_hparams`) and checked for consistency.

use crate::error::{EngineError, Result};
use shohin_gguf::GgufFile;

/// The architectures shohin runs. Both use NEOX (rotate-half) RoPE
/// (llama.cpp `llama_model_rope_type`: QWEN2 and QWEN3 are NEOX).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Bias on q/k/v, no q/k norm.
    Qwen2,
    /// Per-head RMSNorm on q and k, no biases; head_dim from `key_length`.
    Qwen3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head width of q and k (`attention.key_length`).
    pub head_dim: usize,
    /// Per-head width of v (`attention.value_length`).
    pub head_dim_v: usize,
    pub n_ff: usize,
    /// Training context (`context_length`); only an upper bound, never allocated.
    pub n_ctx_train: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
}

/// Upper bound for any single dimension: keeps hostile metadata from
/// driving allocations (largest real models are far below it).
const MAX_DIM: u64 = 1 << 20;

fn bad(key: &str, why: impl Into<String>) -> EngineError {
    EngineError::BadHparam {
        key: key.to_string(),
        why: why.into(),
    }
}

fn dim(f: &GgufFile, key: &str) -> Result<usize> {
    let v = f.get_u64(key)?;
    if v == 0 {
        return Err(bad(key, "must be > 0"));
    }
    if v > MAX_DIM {
        return Err(bad(
            key,
            format!("{v} is implausibly large (limit {MAX_DIM})"),
        ));
    }
    Ok(v as usize)
}

fn opt_dim(f: &GgufFile, key: &str, default: usize) -> Result<usize> {
    if f.get(key).is_some() {
        dim(f, key)
    } else {
        Ok(default)
    }
}

impl ModelConfig {
    pub fn from_gguf(f: &GgufFile) -> Result<Self> {
        let arch_name = f.get_str("general.architecture")?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            other => return Err(EngineError::UnsupportedArch(other.to_string())),
        };
        let a = arch.name();
        let k = |s: &str| format!("{a}.{s}");
        let n_layer = dim(f, &k("block_count"))?;
        let n_embd = dim(f, &k("embedding_length"))?;
        let n_head = dim(f, &k("attention.head_count"))?;
        let n_head_kv = opt_dim(f, &k("attention.head_count_kv"), n_head)?;
        if n_head % n_head_kv != 0 {
            return Err(bad(
                &k("attention.head_count_kv"),
                format!("{n_head_kv} does not divide head_count {n_head}"),
            ));
        }
        if n_embd % n_head != 0 && f.get(&k("attention.key_length")).is_none() {
            return Err(bad(
                &k("attention.key_length"),
                "absent, and embedding_length is not a multiple of head_count",
            ));
        }
        let head_dim = opt_dim(f, &k("attention.key_length"), n_embd / n_head)?;
        let head_dim_v = opt_dim(f, &k("attention.value_length"), head_dim)?;
        if head_dim % 2 != 0 {
            return Err(bad(
                &k("attention.key_length"),
                "RoPE needs an even head size",
            ));
        }
        let n_ff = dim(f, &k("feed_forward_length"))?;
        let n_ctx_train = match f.get(&k("context_length")) {
            Some(_) => {
                let v = f.get_u64(&k("context_length"))?;
                if v == 0 {
                    return Err(bad(&k("context_length"), "must be > 0"));
                }
                usize::try_from(v).unwrap_or(usize::MAX)
            }
            None => 4096,
        };
        let rope_base = match f.get(&k("rope.freq_base")) {
            Some(_) => f.get_f32(&k("rope.freq_base"))?,
            None => 10_000.0,
        };
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(bad(
                &k("rope.freq_base"),
                format!("{rope_base} is not a positive number"),
            ));
        }
        let eps_key = k("attention.layer_norm_rms_epsilon");
        let rms_eps = f.get_f32(&eps_key)?;
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return Err(bad(&eps_key, format!("{rms_eps} is not a positive number")));
        }
        Ok(Self {
            arch,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_ff,
            n_ctx_train,
            rope_base,
            rms_eps,
        })
    }

    /// Width of the concatenated q heads.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    /// Width of the concatenated k heads.
    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
    /// Width of the concatenated v heads.
    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }
}

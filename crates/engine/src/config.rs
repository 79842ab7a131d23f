//! Hyperparameters read from GGUF metadata (`{arch}.*` keys, see llama.cpp's
//! `llama-model.cpp` `load_hparams`) and checked for consistency.

use crate::error::{EngineError, Result};
use crate::ops::RopeLayout;
use crate::rope::{RopeHparams, RopeOptions, RopeParams};
use shohin_gguf::GgufFile;

/// The architectures shohin runs. The Qwen ones use NEOX (rotate-half)
/// RoPE, llama NORM (adjacent pairs) (llama.cpp `llama_model_rope_type`:
/// QWEN2 and QWEN3 are NEOX; QWEN35 is IMROPE, which for text positions is
/// NEOX over `rope.dimension_count`; LLAMA is NORM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Bias on q/k/v, no q/k norm.
    Qwen2,
    /// Per-head RMSNorm on q and k, no biases; head_dim from `key_length`.
    Qwen3,
    /// Qwen3.5 hybrid (Bonsai 2): Gated DeltaNet layers and gated
    /// full-attention layers, see [`HybridConfig`] and `model/qwen35.rs`.
    Qwen35,
    /// Llama 2/3, TinyLlama, SmolLM (llama.cpp `src/models/llama.cpp`): no
    /// biases, no q/k norm, tied or separate output.
    Llama,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Qwen35 => "qwen35",
            Arch::Llama => "llama",
        }
    }

    /// How this architecture's RoPE pairs dims.
    pub fn rope_layout(self) -> RopeLayout {
        match self {
            Arch::Llama => RopeLayout::Norm,
            Arch::Qwen2 | Arch::Qwen3 | Arch::Qwen35 => RopeLayout::Neox,
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
    /// RoPE frequency base and scaling (`rope.*` keys, then any user
    /// overrides: [`ModelConfig::set_rope_overrides`]).
    pub rope: RopeParams,
    pub rms_eps: f32,
    /// qwen35 only: the recurrent layers and their sizes.
    pub hybrid: Option<HybridConfig>,
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
            "qwen35" => Arch::Qwen35,
            "llama" => Arch::Llama,
            other => return Err(EngineError::UnsupportedArch(other.to_string())),
        };
        let a = arch.name();
        let k = |s: &str| format!("{a}.{s}");
        let mut n_layer = dim(f, &k("block_count"))?;
        // Multi-token-prediction blocks are stored after the trunk and not
        // run by the main pass (llama-model.cpp: n_layer() excludes them).
        if arch == Arch::Qwen35 && f.get(&k("nextn_predict_layers")).is_some() {
            let nextn = f.get_u64(&k("nextn_predict_layers"))?;
            if nextn >= n_layer as u64 {
                return Err(bad(
                    &k("nextn_predict_layers"),
                    format!("{nextn} leaves no trunk layers of block_count {n_layer}"),
                ));
            }
            n_layer -= nextn as usize;
        }
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
        if arch == Arch::Llama {
            llama_unsupported(f, a, head_dim)?;
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
        let rope = RopeParams::resolve(
            &RopeHparams::from_gguf(f, a)?,
            n_ctx_train,
            &RopeOptions::default(),
        )?;
        let rope = freq_factors(arch, f, rope, head_dim)?;
        let eps_key = k("attention.layer_norm_rms_epsilon");
        let rms_eps = f.get_f32(&eps_key)?;
        if !(rms_eps.is_finite() && rms_eps > 0.0) {
            return Err(bad(&eps_key, format!("{rms_eps} is not a positive number")));
        }
        let hybrid = match arch {
            Arch::Qwen35 => {
                if head_dim != head_dim_v {
                    return Err(bad(
                        &k("attention.value_length"),
                        format!("{head_dim_v} differs from key_length {head_dim}"),
                    ));
                }
                Some(HybridConfig::from_gguf(f, a, n_layer, head_dim)?)
            }
            _ => None,
        };
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
            rope,
            rms_eps,
            hybrid,
        })
    }

    /// Re-resolves [`ModelConfig::rope`] from `f`'s keys (the file this
    /// config was read from) with the user's overrides `o`.
    pub fn set_rope_overrides(&mut self, f: &GgufFile, o: &RopeOptions) -> Result<()> {
        let h = RopeHparams::from_gguf(f, self.arch.name())?;
        let rope = RopeParams::resolve(&h, self.n_ctx_train, o)?;
        self.rope = freq_factors(self.arch, f, rope, self.head_dim)?;
        Ok(())
    }

    /// The longest context allowed: the training context, or the scaled
    /// one when RoPE scaling extends it ([`RopeParams::max_ctx`]).
    pub fn max_ctx(&self) -> usize {
        self.rope.max_ctx(self.n_ctx_train)
    }

    /// Whether layer `il` is a recurrent (Gated DeltaNet) layer.
    pub fn is_recurrent(&self, il: usize) -> bool {
        self.hybrid.as_ref().is_some_and(|h| h.recurrent[il])
    }

    /// Layers that keep key/value rows (all of them but the recurrent ones).
    pub fn n_attn_layers(&self) -> usize {
        (0..self.n_layer)
            .filter(|&il| !self.is_recurrent(il))
            .count()
    }

    /// Dims of each head that RoPE rotates (all, except for qwen35's
    /// partial rotary `rope.dimension_count`).
    pub fn n_rot(&self) -> usize {
        self.hybrid.as_ref().map_or(self.head_dim, |h| h.n_rot)
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

/// llama's `rope_freqs.weight` (Llama 3.1+), read into the RoPE params;
/// the Qwen graphs of llama.cpp do not read that tensor.
fn freq_factors(arch: Arch, f: &GgufFile, rope: RopeParams, n_rot: usize) -> Result<RopeParams> {
    match arch {
        Arch::Llama => rope.with_freq_factors(f, n_rot),
        _ => Ok(rope),
    }
}

/// The llama variants shohin does not run yet, refused by name rather than
/// run wrong: mixture of experts (Mixtral), a custom attention scale
/// (Granite), partial rotary, Llama 4's q/k norm, and LongRoPE.
fn llama_unsupported(f: &GgufFile, a: &str, head_dim: usize) -> Result<()> {
    let k = |s: &str| format!("{a}.{s}");
    if f.get(&k("expert_count")).is_some() && f.get_u64(&k("expert_count"))? > 0 {
        return Err(bad(
            &k("expert_count"),
            "mixture-of-experts llama models are not supported",
        ));
    }
    if f.get(&k("attention.scale")).is_some() {
        return Err(bad(
            &k("attention.scale"),
            "a custom attention scale (Granite) is not supported",
        ));
    }
    if f.get(&k("rope.dimension_count")).is_some() {
        let n_rot = f.get_u64(&k("rope.dimension_count"))?;
        if n_rot != head_dim as u64 {
            return Err(bad(
                &k("rope.dimension_count"),
                format!("{n_rot} differs from the head size {head_dim} (llama.cpp's llama graph requires them equal)"),
            ));
        }
    }
    Ok(())
}

/// qwen35's hybrid layout and Gated DeltaNet sizes (llama.cpp
/// `src/models/qwen35.cpp` load_arch_hparams / load_block_trunk).
#[derive(Clone, Debug, PartialEq)]
pub struct HybridConfig {
    /// Rotated dims per head (`rope.dimension_count`, partial rotary).
    pub n_rot: usize,
    /// Taps of the causal depthwise convolution (`ssm.conv_kernel`).
    pub d_conv: usize,
    /// Per-head width of q and k, and (upstream asserts it) of v: the delta
    /// state of a head is `d_state x d_state` (`ssm.state_size`).
    pub d_state: usize,
    /// q/k heads (`ssm.group_count`).
    pub n_k_heads: usize,
    /// v heads, each with its own state, gate and beta (`ssm.time_step_rank`).
    pub n_v_heads: usize,
    /// Per layer: a DeltaNet layer (true) or full attention (false).
    pub recurrent: Vec<bool>,
}

impl HybridConfig {
    fn from_gguf(f: &GgufFile, a: &str, n_layer: usize, head_dim: usize) -> Result<Self> {
        let k = |s: &str| format!("{a}.{s}");
        let n_rot = opt_dim(f, &k("rope.dimension_count"), head_dim)?;
        if n_rot % 2 != 0 || n_rot > head_dim {
            return Err(bad(
                &k("rope.dimension_count"),
                format!("{n_rot} must be even and at most key_length {head_dim}"),
            ));
        }
        let d_conv = dim(f, &k("ssm.conv_kernel"))?;
        if d_conv > 64 {
            return Err(bad(
                &k("ssm.conv_kernel"),
                format!("{d_conv} is implausibly large"),
            ));
        }
        let d_inner = dim(f, &k("ssm.inner_size"))?;
        let d_state = dim(f, &k("ssm.state_size"))?;
        let n_k_heads = dim(f, &k("ssm.group_count"))?;
        let n_v_heads = dim(f, &k("ssm.time_step_rank"))?;
        if n_v_heads % n_k_heads != 0 {
            return Err(bad(
                &k("ssm.group_count"),
                format!("{n_k_heads} does not divide time_step_rank {n_v_heads}"),
            ));
        }
        if d_inner != n_v_heads * d_state {
            return Err(bad(
                &k("ssm.inner_size"),
                format!("{d_inner} is not time_step_rank {n_v_heads} x state_size {d_state} (value and key heads must be the same width)"),
            ));
        }
        if f.get(&k("attention.recurrent_layers")).is_some() {
            return Err(bad(
                &k("attention.recurrent_layers"),
                "an explicit recurrent layer list is not supported (only full_attention_interval)",
            ));
        }
        let interval = opt_dim(f, &k("full_attention_interval"), 4)?;
        let recurrent = (0..n_layer).map(|i| (i + 1) % interval != 0).collect();
        Ok(Self {
            n_rot,
            d_conv,
            d_state,
            n_k_heads,
            n_v_heads,
            recurrent,
        })
    }

    /// Width of the concatenated q (or k) heads of a DeltaNet layer.
    pub fn key_dim(&self) -> usize {
        self.n_k_heads * self.d_state
    }
    /// Width of the concatenated v heads (`ssm.inner_size`).
    pub fn value_dim(&self) -> usize {
        self.n_v_heads * self.d_state
    }
    /// Channels of the convolution: q, k and v, in that order.
    pub fn conv_dim(&self) -> usize {
        2 * self.key_dim() + self.value_dim()
    }
    /// Floats of one layer's recurrent state: the last `d_conv - 1` conv
    /// inputs and one `d_state x d_state` matrix per v head.
    pub fn state_floats(&self) -> usize {
        (self.d_conv - 1) * self.conv_dim() + self.n_v_heads * self.d_state * self.d_state
    }
}

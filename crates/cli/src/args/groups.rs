//! Flag groups flattened into several commands: RoPE scaling, context
//! shift, speculative decoding and LoRA adapters (llama.cpp's names,
//! `common/arg.cpp`).

use clap::Args;
use shohin_engine::rope::{RopeOptions, RopeScaling};
use std::path::PathBuf;

/// RoPE frequency scaling, llama.cpp's flags (`common/arg.cpp`); each
/// overrides the model file's `rope.*` keys. Values are checked at load
/// (exit code 1, naming the flag).
#[derive(Args, Debug, Clone, Default)]
pub struct RopeArgs {
    /// RoPE frequency scaling method: none, linear or yarn (default: the
    /// model's, else linear).
    #[arg(long = "rope-scaling", value_name = "{none,linear,yarn}")]
    pub rope_scaling: Option<String>,
    /// RoPE context scaling factor: expands the context by N (freq scale 1/N).
    #[arg(
        long = "rope-scale",
        value_name = "N",
        conflicts_with = "rope_freq_scale"
    )]
    pub rope_scale: Option<f32>,
    /// RoPE base frequency (default: the model's).
    #[arg(long = "rope-freq-base", value_name = "N")]
    pub rope_freq_base: Option<f32>,
    /// RoPE frequency scaling factor: expands the context by 1/N.
    #[arg(long = "rope-freq-scale", value_name = "N")]
    pub rope_freq_scale: Option<f32>,
    /// YaRN: original context size of the model (default: the model's,
    /// else its training context; 0 = that default).
    #[arg(long = "yarn-orig-ctx", value_name = "N")]
    pub yarn_orig_ctx: Option<usize>,
    /// YaRN: extrapolation mix factor (default: 1 with yarn, else 0;
    /// 0 = full interpolation).
    #[arg(long = "yarn-ext-factor", value_name = "N")]
    pub yarn_ext_factor: Option<f32>,
    /// YaRN: attention magnitude factor (default 1; as in llama.cpp, used
    /// only while the extrapolation mix is 0).
    #[arg(long = "yarn-attn-factor", value_name = "N")]
    pub yarn_attn_factor: Option<f32>,
    /// YaRN: low correction dim or beta (default 32).
    #[arg(long = "yarn-beta-fast", value_name = "N")]
    pub yarn_beta_fast: Option<f32>,
    /// YaRN: high correction dim or alpha (default 1).
    #[arg(long = "yarn-beta-slow", value_name = "N")]
    pub yarn_beta_slow: Option<f32>,
}

impl RopeArgs {
    /// The engine's overrides; an unknown --rope-scaling is an error
    /// naming it (the numbers are checked by the engine at load).
    pub fn options(&self) -> anyhow::Result<RopeOptions> {
        let scaling = self
            .rope_scaling
            .as_deref()
            .map(str::parse::<RopeScaling>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--rope-scaling: {e}"))?;
        Ok(RopeOptions {
            scaling,
            scale: self.rope_scale,
            freq_scale: self.rope_freq_scale,
            freq_base: self.rope_freq_base,
            n_ctx_orig: self.yarn_orig_ctx,
            ext_factor: self.yarn_ext_factor,
            attn_factor: self.yarn_attn_factor,
            beta_fast: self.yarn_beta_fast,
            beta_slow: self.yarn_beta_slow,
        })
    }
}

/// Context shift (llama.cpp's `--context-shift` / `--keep`).
#[derive(Args, Debug, Clone, Default)]
pub struct ContextShiftArgs {
    /// When the context is full, drop half of the tokens after the kept
    /// start (--keep) and go on generating, instead of stopping (default:
    /// off, as in llama.cpp). Not for hybrid (qwen35) models.
    #[arg(long = "context-shift", overrides_with = "no_context_shift")]
    pub context_shift: bool,
    /// Stop when the context is full (the default).
    #[arg(long = "no-context-shift", overrides_with = "context_shift")]
    pub no_context_shift: bool,
    /// Tokens of the initial prompt a context shift keeps (plus BOS when the
    /// model adds one; -1 = the whole prompt; default 0, as in llama.cpp).
    #[arg(
        long = "keep",
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub keep: i64,
}

impl ContextShiftArgs {
    /// `Some(keep)` when context shift is on.
    pub fn keep(&self) -> anyhow::Result<Option<shohin_engine::context_shift::Keep>> {
        let keep =
            shohin_engine::context_shift::Keep::from_arg(self.keep).map_err(anyhow::Error::msg)?;
        Ok((self.context_shift && !self.no_context_shift).then_some(keep))
    }
}

/// Speculative decoding, with llama.cpp's flag names (`common/arg.cpp`).
/// The output is the same as without it (crates/engine/src/speculative).
#[derive(Args, Debug, Clone)]
pub struct SpecArgs {
    /// Draft model for speculative decoding: a smaller model with the same
    /// vocabulary (also -md).
    #[arg(
        long = "model-draft",
        visible_alias = "spec-draft-model",
        value_name = "FNAME"
    )]
    pub model_draft: Option<PathBuf>,
    /// Tokens to draft per step at most.
    #[arg(
        long = "draft-max",
        visible_alias = "draft",
        value_name = "N",
        default_value_t = shohin_engine::speculative::DEFAULT_DRAFT_MAX
    )]
    pub draft_max: usize,
    /// Drafts shorter than N are not verified (a plain step instead).
    #[arg(long = "draft-min", value_name = "N", default_value_t = 0)]
    pub draft_min: usize,
    /// The draft model stops drafting at a token it gives less than P.
    #[arg(
        long = "draft-p-min",
        value_name = "P",
        default_value_t = shohin_engine::speculative::DEFAULT_DRAFT_P_MIN
    )]
    pub draft_p_min: f32,
    /// Prompt lookup decoding: draft by continuing an earlier occurrence
    /// of the last n-gram of the prompt and output (no draft model).
    #[arg(long = "lookup", conflicts_with = "model_draft")]
    pub lookup: bool,
    /// With --lookup: the longest n-gram matched (down to 2).
    #[arg(
        long = "lookup-ngram",
        value_name = "N",
        default_value_t = shohin_engine::speculative::DEFAULT_LOOKUP_NGRAM
    )]
    pub lookup_ngram: usize,
}

/// LoRA adapters (llama.cpp's `--lora` / `--lora-scaled`, `common/arg.cpp`),
/// applied in the order: every `--lora`, then every `--lora-scaled`.
#[derive(Args, Debug, Clone, Default)]
pub struct LoraArgs {
    /// LoRA adapter (GGUF, as convert_lora_to_gguf.py writes) at scale 1;
    /// repeat the flag or separate several files with commas.
    #[arg(long = "lora", value_name = "FNAME", value_delimiter = ',')]
    pub lora: Vec<PathBuf>,
    /// LoRA adapters with a user scale: FNAME:SCALE,... (repeatable).
    #[arg(
        long = "lora-scaled",
        value_name = "FNAME:SCALE,...",
        value_delimiter = ','
    )]
    pub lora_scaled: Vec<String>,
}

impl LoraArgs {
    /// The adapters and their user scales, in order.
    pub fn adapters(&self) -> anyhow::Result<Vec<(PathBuf, f32)>> {
        let mut out: Vec<(PathBuf, f32)> = self.lora.iter().map(|p| (p.clone(), 1.0)).collect();
        for item in &self.lora_scaled {
            // The last ':' splits, so that a path may hold one.
            let (path, scale) = item.rsplit_once(':').ok_or_else(|| {
                anyhow::anyhow!("--lora-scaled {item:?}: the format is FNAME:SCALE")
            })?;
            let scale: f32 = scale.trim().parse().map_err(|_| {
                anyhow::anyhow!("--lora-scaled {item:?}: SCALE {scale:?} is not a number")
            })?;
            if path.is_empty() || !scale.is_finite() {
                anyhow::bail!("--lora-scaled {item:?}: the format is FNAME:SCALE");
            }
            out.push((PathBuf::from(path), scale));
        }
        Ok(out)
    }
}

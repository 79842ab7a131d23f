//! RoPE frequency scaling (none, linear, YaRN) as llama.cpp resolves and
//! ggml computes it.
//!
//! Three layers, each from one place in llama.cpp:
//! * [`RopeHparams`]: the GGUF keys, with `load_hparams`'s defaults
//!   (`src/llama-model.cpp`: `rope.freq_base` 10000, `rope.scaling.type`
//!   "linear", `rope.scaling.factor` (or the old `rope.scale_linear`)
//!   giving freq_scale = 1/factor, `rope.scaling.attn_factor` 1,
//!   `rope.scaling.original_context_length` the training context).
//! * [`RopeOptions`]: the user's overrides (llama.cpp's `common_params`,
//!   filled by `--rope-scaling`, `--rope-scale`, ... in `common/arg.cpp`).
//! * [`RopeParams`]: both merged as `llama_context`'s constructor does
//!   (`src/llama-context.cpp`), i.e. what the graph passes to
//!   `ggml_rope_ext`; its [`RopeParams::cache`] is ggml-cpu's rope cache
//!   (`ggml/src/ggml-cpu/ops.cpp`: `ggml_rope_cache_init`, `rope_yarn`,
//!   `rope_yarn_ramp`; `ggml/src/ggml.c`: `ggml_rope_yarn_corr_dims`) with
//!   the same f32 operations in the same order.

use crate::error::{EngineError, Result};
use shohin_gguf::GgufFile;
use std::sync::Arc;

/// Frequency scaling method (llama.cpp `llama_rope_scaling_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeScaling {
    /// Positions as trained; any scale factor is ignored.
    None,
    /// Position interpolation: every angle times freq_scale.
    Linear,
    /// YaRN: interpolation for low frequencies, extrapolation for high
    /// ones, blended by a ramp over the correction dims, plus a magnitude
    /// correction of the rotated q and k.
    Yarn,
}

impl RopeScaling {
    pub fn name(self) -> &'static str {
        match self {
            RopeScaling::None => "none",
            RopeScaling::Linear => "linear",
            RopeScaling::Yarn => "yarn",
        }
    }
}

impl std::str::FromStr for RopeScaling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear),
            "yarn" => Ok(RopeScaling::Yarn),
            other => Err(format!("`{other}` is not one of none, linear, yarn")),
        }
    }
}

/// The RoPE keys of a GGUF file, defaults filled in as llama.cpp's
/// `load_hparams` fills them.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeHparams {
    pub freq_base: f32,
    pub scaling: RopeScaling,
    /// 1 / `rope.scaling.factor` (1 when the factor is absent or 0).
    pub freq_scale: f32,
    /// `rope.scaling.attn_factor`: multiplies the final attn_factor.
    pub attn_factor: f32,
    /// `rope.scaling.original_context_length` (None when absent or 0).
    pub n_ctx_orig: Option<usize>,
    /// `rope.scaling.finetuned`: informational only, as in llama.cpp.
    pub finetuned: bool,
}

/// User overrides; `None` keeps the model's value. Values are checked by
/// [`RopeParams::resolve`], and errors name the flag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RopeOptions {
    /// `--rope-scaling`.
    pub scaling: Option<RopeScaling>,
    /// `--rope-scale N`: freq_scale = 1/N.
    pub scale: Option<f32>,
    /// `--rope-freq-scale`.
    pub freq_scale: Option<f32>,
    /// `--rope-freq-base`.
    pub freq_base: Option<f32>,
    /// `--yarn-orig-ctx` (0 = the training context, as in llama.cpp).
    pub n_ctx_orig: Option<usize>,
    /// `--yarn-ext-factor`.
    pub ext_factor: Option<f32>,
    /// `--yarn-attn-factor`.
    pub attn_factor: Option<f32>,
    /// `--yarn-beta-fast`.
    pub beta_fast: Option<f32>,
    /// `--yarn-beta-slow`.
    pub beta_slow: Option<f32>,
}

/// What the forward pass rotates with (llama.cpp's cparams as passed to
/// `ggml_rope_ext`).
#[derive(Clone, Debug, PartialEq)]
pub struct RopeParams {
    pub scaling: RopeScaling,
    pub freq_base: f32,
    /// Angle multiplier: 1 / the context extension factor.
    pub freq_scale: f32,
    /// YaRN extrapolation mix (0 = pure interpolation, what linear does).
    pub ext_factor: f32,
    /// Magnitude of cos/sin before the YaRN correction.
    pub attn_factor: f32,
    pub beta_fast: f32,
    pub beta_slow: f32,
    /// The context the model was trained on before extension.
    pub n_ctx_orig: usize,
    /// Per-pair divisors of the angle (`rope_freqs.weight`, Llama 3.1+'s
    /// frequency scaling baked into the file), one per rotated pair.
    pub freq_factors: Option<Arc<[f32]>>,
}

fn bad(key: &str, why: impl Into<String>) -> EngineError {
    EngineError::BadHparam {
        key: key.to_string(),
        why: why.into(),
    }
}

/// `v` if it is finite and above 0 (at or above 0 with `zero_ok`), else
/// an error naming `what`.
fn check(what: &str, v: f32, zero_ok: bool) -> Result<f32> {
    if v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) {
        Ok(v)
    } else {
        let want = if zero_ok { ">= 0" } else { "> 0" };
        Err(bad(what, format!("{v} is not a finite number {want}")))
    }
}

impl RopeHparams {
    /// Reads `{arch}.rope.*`.
    pub fn from_gguf(f: &GgufFile, arch: &str) -> Result<Self> {
        let k = |s: &str| format!("{arch}.{s}");
        let opt_f32 = |key: &str| -> Result<Option<f32>> {
            Ok(match f.get(key) {
                Some(_) => Some(f.get_f32(key)?),
                None => None,
            })
        };
        let base_key = k("rope.freq_base");
        let freq_base = check(&base_key, opt_f32(&base_key)?.unwrap_or(10_000.0), false)?;
        let type_key = k("rope.scaling.type");
        let scaling = match f.get(&type_key) {
            None => RopeScaling::Linear,
            Some(_) => match f.get_str(&type_key)? {
                "longrope" => return Err(bad(&type_key, "LongRoPE is not supported")),
                s => s.parse().map_err(|e: String| bad(&type_key, e))?,
            },
        };
        // The old key is read only when the new one is absent (llama.cpp).
        let mut factor_key = k("rope.scaling.factor");
        if f.get(&factor_key).is_none() {
            factor_key = k("rope.scale_linear");
        }
        let factor = check(&factor_key, opt_f32(&factor_key)?.unwrap_or(0.0), true)?;
        let freq_scale = if factor == 0.0 { 1.0 } else { 1.0 / factor };
        let attn_key = k("rope.scaling.attn_factor");
        let attn_factor = check(&attn_key, opt_f32(&attn_key)?.unwrap_or(1.0), false)?;
        let orig_key = k("rope.scaling.original_context_length");
        let n_ctx_orig = match f.get(&orig_key) {
            Some(_) => match f.get_u64(&orig_key)? {
                0 => None,
                v => Some(usize::try_from(v).unwrap_or(usize::MAX)),
            },
            None => None,
        };
        let fine_key = k("rope.scaling.finetuned");
        let finetuned = f.get(&fine_key).is_some() && f.get_bool(&fine_key)?;
        Ok(Self {
            freq_base,
            scaling,
            freq_scale,
            attn_factor,
            n_ctx_orig,
            finetuned,
        })
    }

    /// A file without any RoPE scaling keys, for `freq_base`.
    pub fn plain(freq_base: f32) -> Self {
        Self {
            freq_base,
            scaling: RopeScaling::Linear,
            freq_scale: 1.0,
            attn_factor: 1.0,
            n_ctx_orig: None,
            finetuned: false,
        }
    }
}

impl RopeParams {
    /// The file's values overridden by the user's, with llama.cpp's
    /// precedence (`llama_context::llama_context`): an option given wins;
    /// scaling `none` forces freq_scale 1; ext_factor defaults to 1 for
    /// YaRN and 0 otherwise; with ext_factor != 0 the attn_factor is
    /// recomputed (any given one is replaced, as upstream does) so that
    /// ggml's own YaRN magnitude factor is applied once; the file's
    /// `rope.scaling.attn_factor` multiplies it last.
    pub fn resolve(h: &RopeHparams, n_ctx_train: usize, o: &RopeOptions) -> Result<Self> {
        let scaling = o.scaling.unwrap_or(h.scaling);
        let freq_base = match o.freq_base {
            Some(v) => check("--rope-freq-base", v, false)?,
            None => h.freq_base,
        };
        let mut freq_scale = match (o.scale, o.freq_scale) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "--rope-scale",
                    "give either --rope-scale or --rope-freq-scale, not both",
                ))
            }
            (Some(n), None) => 1.0 / check("--rope-scale", n, false)?,
            (None, Some(v)) => check("--rope-freq-scale", v, false)?,
            (None, None) => h.freq_scale,
        };
        check("--rope-scale", freq_scale, false)?;
        // llama.cpp: yarn_orig_ctx, else the file's, else n_ctx_train.
        let n_ctx_orig = match o.n_ctx_orig {
            Some(n) if n > 0 => n,
            _ => h.n_ctx_orig.unwrap_or(n_ctx_train),
        };
        let opt = |flag: &str, v: Option<f32>, zero_ok: bool| -> Result<Option<f32>> {
            v.map(|v| check(flag, v, zero_ok)).transpose()
        };
        let beta_fast = opt("--yarn-beta-fast", o.beta_fast, false)?.unwrap_or(32.0);
        let beta_slow = opt("--yarn-beta-slow", o.beta_slow, false)?.unwrap_or(1.0);
        let mut attn_factor = opt("--yarn-attn-factor", o.attn_factor, false)?.unwrap_or(1.0);
        let ext_given = opt("--yarn-ext-factor", o.ext_factor, true)?;
        if scaling == RopeScaling::None {
            freq_scale = 1.0;
        }
        let ext_factor = ext_given.unwrap_or(if scaling == RopeScaling::Yarn {
            1.0
        } else {
            0.0
        });
        if ext_factor != 0.0 {
            // llama-context.cpp's get_mscale(factor, 1) times the inverse
            // of ggml's factor. libllama is built without FMA (only
            // ggml-cpu is -march=native): two roundings, not one, so
            // `mul_add` would differ in the last bit.
            let factor = 1.0 / freq_scale;
            let g = 0.1f32 * factor.ln() + 1.0;
            attn_factor = if factor <= 1.0 { 1.0 } else { g };
            attn_factor *= 1.0 / g;
        }
        attn_factor *= h.attn_factor;
        Ok(Self {
            scaling,
            freq_base,
            freq_scale,
            ext_factor,
            attn_factor,
            beta_fast,
            beta_slow,
            n_ctx_orig,
            freq_factors: None,
        })
    }

    /// Reads `rope_freqs.weight` (F32, one divisor per rotated pair of
    /// `n_rot` dims) into [`Self::freq_factors`] when the file has it, as
    /// llama.cpp's llama graph passes it to `ggml_rope_ext`.
    pub fn with_freq_factors(mut self, f: &GgufFile, n_rot: usize) -> Result<Self> {
        const NAME: &str = "rope_freqs.weight";
        let Some(t) = f.tensor(NAME) else {
            return Ok(self);
        };
        if t.ggml_type != shohin_gguf::GgmlType::F32 || t.dims.as_slice() != [n_rot as u64 / 2] {
            return Err(bad(
                NAME,
                format!(
                    "must be F32 [{}] (one divisor per rotated pair), found {:?} {:?}",
                    n_rot / 2,
                    t.ggml_type,
                    t.dims
                ),
            ));
        }
        let v: Vec<f32> = f
            .tensor_data(t)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(x) = v.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
            return Err(bad(NAME, format!("divisor {x} is not a positive number")));
        }
        self.freq_factors = Some(v.into());
        Ok(self)
    }

    /// Whether positions are scaled at all.
    pub fn is_scaled(&self) -> bool {
        self.freq_scale != 1.0 || self.ext_factor != 0.0
    }

    /// The longest context to allow: the training context, or with a
    /// context extension (freq_scale < 1) the original context divided by
    /// freq_scale when that is longer (llama.cpp's adjusted n_ctx_train,
    /// `n_ctx_orig_yarn / rope_freq_scale`, truncated as there).
    pub fn max_ctx(&self, n_ctx_train: usize) -> usize {
        if self.scaling == RopeScaling::None || self.freq_scale >= 1.0 {
            return n_ctx_train;
        }
        let scaled = self.n_ctx_orig as f32 / self.freq_scale;
        n_ctx_train.max(scaled as usize)
    }

    /// The YaRN correction dims for `n_dims` rotated dims
    /// (ggml_rope_yarn_corr_dims): the pair indices below which angles are
    /// extrapolated and above which interpolated.
    pub fn corr_dims(&self, n_dims: usize) -> [f32; 2] {
        let nd = n_dims as f32;
        let corr = |beta: f32| {
            let r = self.n_ctx_orig as f32 / (beta * 2.0 * std::f32::consts::PI);
            nd * r.ln() / (2.0 * self.freq_base.ln())
        };
        let start = corr(self.beta_fast).floor();
        let end = corr(self.beta_slow).ceil();
        // MAX(0, start), MIN(n_dims - 1, end) with C's comparisons.
        let lo = if 0.0 > start { 0.0 } else { start };
        let hi = if nd - 1.0 < end { nd - 1.0 } else { end };
        [lo, hi]
    }

    /// The (cos, sin) of each of the `n_dims / 2` pairs at position `pos`,
    /// times the magnitude factor: ggml_rope_cache_init and rope_yarn.
    pub fn cache(&self, pos: i64, n_dims: usize, out: &mut [(f32, f32)]) {
        let mut mscale = self.attn_factor;
        if self.ext_factor != 0.0 {
            // rope_yarn: mscale *= 1 + 0.1 ln(1/freq_scale), contracted to
            // one FMA by GCC in ggml-cpu (checked in its disassembly).
            mscale *= 0.1f32.mul_add((1.0 / self.freq_scale).ln(), 1.0);
        }
        self.fill(pos, n_dims, Some(mscale), out);
    }

    /// The pure rotation by a signed position delta: the same angles as
    /// [`cache`](Self::cache) at position `delta`, without the magnitude
    /// factor, so that rotating a cached key by `-d` undoes a rotation by
    /// `d` (up to rounding) instead of scaling it again. (llama.cpp's
    /// K-shift runs the full rope, attn_factor included.)
    pub fn rotation(&self, delta: i64, n_dims: usize, out: &mut [(f32, f32)]) {
        self.fill(delta, n_dims, None, out);
    }

    fn fill(&self, pos: i64, n_dims: usize, mscale: Option<f32>, out: &mut [(f32, f32)]) {
        let theta_scale = self.freq_base.powf(-2.0 / n_dims as f32);
        let corr = self.corr_dims(n_dims);
        let mut theta_extrap = pos as f32;
        for (i, c) in out.iter_mut().take(n_dims / 2).enumerate() {
            // ggml_rope_cache_init: the pair's angle over its divisor.
            let te = match &self.freq_factors {
                Some(ff) => theta_extrap / ff[i],
                None => theta_extrap,
            };
            let theta = self.angle(te, i, corr);
            let (s, co) = theta.sin_cos();
            *c = match mscale {
                Some(m) => (co * m, s * m),
                None => (co, s),
            };
            theta_extrap *= theta_scale;
        }
    }

    /// rope_yarn's angle for pair `i` (dims `i0 = 2i`, `i0 + 1`): the
    /// interpolated angle, blended towards the extrapolated one by the ramp.
    fn angle(&self, theta_extrap: f32, i: usize, corr: [f32; 2]) -> f32 {
        let theta_interp = self.freq_scale * theta_extrap;
        if self.ext_factor == 0.0 {
            return theta_interp;
        }
        let ramp_mix = ramp(corr[0], corr[1], i) * self.ext_factor;
        // `interp * (1 - mix) + extrap * mix`: GCC fuses the first product
        // (vfmadd132ss in ggml-cpu's compute_forward_rope).
        theta_interp.mul_add(1.0 - ramp_mix, theta_extrap * ramp_mix)
    }
}

impl crate::model::Model {
    /// Applies the user's RoPE overrides (before any cache is made: the
    /// keys a cache holds were rotated with the parameters of their time).
    pub fn set_rope_overrides(&mut self, o: &RopeOptions) -> Result<()> {
        let file = &self.file;
        self.config.set_rope_overrides(file, o)
    }
}

/// rope_yarn_ramp for pair `i` (`i0 / 2` in ggml): 1 below the low
/// correction dim, 0 above the high one, linear between.
fn ramp(low: f32, high: f32, i: usize) -> f32 {
    let width = if 0.001f32 > high - low {
        0.001
    } else {
        high - low
    };
    let y = (i as f32 - low) / width;
    let clamped = if 0.0 > y { 0.0 } else { y };
    1.0 - if 1.0 < clamped { 1.0 } else { clamped }
}

#[cfg(test)]
#[path = "rope_tests.rs"]
mod tests;

//! Context shift (llama.cpp's `--context-shift` / `--keep N`): when a
//! sequence fills its context, forget half of the positions after the first
//! `n_keep` and go on generating, instead of stopping.
//!
//! llama.cpp (tools/completion/completion.cpp, the server's slot shift in
//! tools/server/server-context.cpp): `n_left = n_past - n_keep`,
//! `n_discard = n_left / 2`, `llama_memory_seq_rm(keep, keep + discard)`
//! then `llama_memory_seq_add(keep + discard, n_past, -discard)`. The
//! moved rows keep what they were computed from (they attended to the
//! dropped tokens); only their positions change. The cache operation is
//! [`KvCache::shift`] (kv_cache/shift.rs).

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache::shift::KeyRotation;
use crate::kv_cache::KvCache;
use crate::model::Model;

/// `--keep N`: what stays at the start of the context when it shifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The first `n` tokens of the initial prompt (plus BOS, which
    /// llama.cpp always keeps).
    Tokens(usize),
    /// The whole initial prompt (`--keep -1`).
    All,
}

impl Default for Keep {
    /// llama.cpp's default `n_keep = 0` (common.h).
    fn default() -> Self {
        Keep::Tokens(0)
    }
}

impl Keep {
    /// From `--keep N`: `-1` is the whole prompt, as in llama.cpp.
    pub fn from_arg(n: i64) -> std::result::Result<Self, String> {
        match n {
            -1 => Ok(Keep::All),
            n if n >= 0 => Ok(Keep::Tokens(n as usize)),
            n => Err(format!(
                "--keep {n}: must be a number of tokens, or -1 for the whole prompt"
            )),
        }
    }

    /// `n_keep` for a sequence whose initial prompt has `n_prompt` tokens,
    /// in a context of `n_ctx`. llama-cli's rule (completion.cpp): `-1` or
    /// more than the prompt keeps the prompt; otherwise BOS is kept on top
    /// of `n` when the tokenizer adds one. Then llama-server's bound
    /// (`n_keep <= n_ctx - 4`), so that a shift always frees positions.
    pub fn resolve(self, n_prompt: usize, add_bos: bool, n_ctx: usize) -> usize {
        let n = match self {
            Keep::All => n_prompt,
            Keep::Tokens(n) if n > n_prompt => n_prompt,
            Keep::Tokens(n) => n + usize::from(add_bos),
        };
        n.min(n_ctx.saturating_sub(4))
    }
}

/// Positions a shift of a sequence of `len` keeping `n_keep` drops: half of
/// those after the kept ones (llama.cpp's `n_left / 2`).
pub fn n_discard(len: usize, n_keep: usize) -> usize {
    len.saturating_sub(n_keep) / 2
}

/// The rotation table, `(cos, sin)` per pair of the first `n_rot` dims, that
/// turns a key stored at position `p` into one at `p + delta`: rope.rs's
/// pure rotation (the model's frequencies and YaRN ramp, without the
/// magnitude factor the stored key already carries).
fn delta_table(c: &ModelConfig, delta: i64, out: &mut Vec<(f32, f32)>) {
    let n_rot = c.n_rot();
    out.resize(n_rot / 2, (0.0, 0.0));
    c.rope.rotation(delta, n_rot, out);
}

/// Whether a model of config `c` can shift: not a hybrid (qwen35) one,
/// whose recurrent state cannot forget tokens. (llama.cpp refuses shifting
/// a memory that cannot: `llama_memory_can_shift`.)
pub fn check_config(c: &ModelConfig) -> Result<()> {
    if c.hybrid.is_some() {
        return Err(EngineError::NoContextShift(format!(
            "--context-shift is not supported for {} (hybrid) models: their Gated \
             DeltaNet layers keep a recurrent state that sums up every past token \
             and cannot drop some of them",
            c.arch.name()
        )));
    }
    Ok(())
}

impl Model {
    /// Whether this model's sequences can be shifted ([`check_config`]).
    pub fn check_context_shift(&self) -> Result<()> {
        check_config(&self.config)
    }

    /// Drop positions `keep..keep + n_discard` of `cache` and move the later
    /// ones down, their keys re-rotated by `-n_discard` positions; nothing
    /// is evaluated again.
    pub fn shift_cache(&self, cache: &mut KvCache, keep: usize, n_discard: usize) -> Result<()> {
        self.check_context_shift()?;
        let c = &self.config;
        let mut table = Vec::new();
        delta_table(c, -(n_discard as i64), &mut table);
        let rot = KeyRotation {
            head_dim: c.head_dim,
            n_rot: c.n_rot(),
            // NEOX for the qwens, NORM (adjacent pairs) for llama.
            layout: c.arch.rope_layout(),
            table: &table,
        };
        cache.shift(keep, n_discard, &rot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama-cli's n_keep: -1 or past the prompt = the prompt; else + BOS;
    /// never more than n_ctx - 4.
    #[test]
    fn keep_resolves_like_llama_cpp() {
        assert_eq!(Keep::from_arg(-1), Ok(Keep::All));
        assert_eq!(Keep::from_arg(5), Ok(Keep::Tokens(5)));
        assert!(Keep::from_arg(-2).unwrap_err().contains("-1"));
        assert_eq!(Keep::All.resolve(10, true, 64), 10);
        assert_eq!(Keep::Tokens(0).resolve(10, true, 64), 1);
        assert_eq!(Keep::Tokens(0).resolve(10, false, 64), 0);
        assert_eq!(Keep::Tokens(3).resolve(10, true, 64), 4);
        assert_eq!(Keep::Tokens(11).resolve(10, true, 64), 10);
        assert_eq!(Keep::All.resolve(100, false, 64), 60);
        assert_eq!(n_discard(64, 0), 32);
        assert_eq!(n_discard(64, 5), 29);
        assert_eq!(n_discard(3, 5), 0);
    }
}

//! A conversation's state: the KV cache, the tokens it holds, and the
//! logits after the last one. Generation loops drive it one step at a time.

use crate::error::{EngineError, Result};
use crate::kv_cache::KvCache;
use crate::model::Model;
use std::time::{Duration, Instant};

mod shift;
mod verify;
pub(crate) use verify::keep_verified;

/// Default context when `--ctx-size` is not given: min(model context, this).
pub const DEFAULT_CTX: usize = 4096;

/// The context size to allocate: `requested`, or min(model, 4096).
/// Never larger than `max_ctx`: the model's training context, or with RoPE
/// scaling the scaled one ([`crate::config::ModelConfig::max_ctx`]).
pub fn resolve_ctx(requested: Option<usize>, max_ctx: usize) -> Result<usize> {
    match requested {
        None => Ok(max_ctx.min(DEFAULT_CTX)),
        Some(0) => Err(EngineError::BadCtxSize {
            got: 0,
            why: "must be at least 1".into(),
        }),
        Some(n) if n > max_ctx => Err(EngineError::BadCtxSize {
            got: n,
            why: format!(
                "the model supports {max_ctx} positions (its training context; RoPE scaling, \
                 e.g. --rope-scaling yarn --rope-scale N, extends it)"
            ),
        }),
        Some(n) => Ok(n),
    }
}

/// Time spent and tokens processed, for the end-of-run summary.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub n_prompt: usize,
    pub prompt: Duration,
    pub n_gen: usize,
    pub gen: Duration,
}

impl Timings {
    pub fn prompt_tps(&self) -> f64 {
        rate(self.n_prompt, self.prompt)
    }
    pub fn gen_tps(&self) -> f64 {
        rate(self.n_gen, self.gen)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

#[derive(Debug)]
pub struct Session<'m> {
    model: &'m Model,
    cache: KvCache,
    tokens: Vec<u32>,
    logits: Vec<f32>,
    pub timings: Timings,
    /// Context shift, when on (session/shift.rs).
    shift: Option<shift::ShiftState>,
}

impl<'m> Session<'m> {
    pub fn new(model: &'m Model, n_ctx: usize) -> Self {
        Self {
            model,
            cache: model.new_cache(n_ctx),
            tokens: Vec::new(),
            logits: vec![0.0; model.n_vocab()],
            timings: Timings::default(),
            shift: None,
        }
    }

    pub fn model(&self) -> &'m Model {
        self.model
    }
    pub fn n_ctx(&self) -> usize {
        self.cache.n_ctx()
    }
    /// Tokens in the context so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
    /// Logits after the last evaluated token.
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Evaluate a prompt (batched). Errors before touching the cache when it
    /// cannot fit.
    pub fn prompt(&mut self, ids: &[u32]) -> Result<&[f32]> {
        if self.shift.is_some() && !self.tokens.is_empty() {
            // A later prompt (a chat turn) may need shifts on the way.
            return self.prompt_shifting(ids);
        }
        self.resolve_keep(ids.len());
        if self.tokens.len() + ids.len() > self.n_ctx() {
            return Err(EngineError::PromptTooLong {
                n_prompt: self.tokens.len() + ids.len(),
                n_ctx: self.n_ctx(),
            });
        }
        let t = Instant::now();
        self.eval(ids)?;
        // A hybrid model's next turn can resume here (see `truncate`).
        self.cache.save_snapshot();
        self.timings.n_prompt += ids.len();
        self.timings.prompt += t.elapsed();
        Ok(&self.logits)
    }

    /// Evaluate one generated token.
    pub fn step(&mut self, id: u32) -> Result<&[f32]> {
        let t = Instant::now();
        self.eval(&[id])?;
        self.timings.n_gen += 1;
        self.timings.gen += t.elapsed();
        Ok(&self.logits)
    }

    fn eval(&mut self, ids: &[u32]) -> Result<()> {
        let have = self.cache.len();
        if have < self.tokens.len() {
            // `truncate` could not rewind a recurrent state to where it
            // cut: evaluate the kept tokens past the state first.
            let mut all = self.tokens[have..].to_vec();
            all.extend_from_slice(ids);
            self.model
                .forward(&mut self.cache, &all, &mut self.logits)?;
        } else {
            self.model.forward(&mut self.cache, ids, &mut self.logits)?;
        }
        self.tokens.extend_from_slice(ids);
        Ok(())
    }

    /// Drop everything after the first `n` tokens (reuse a shared prefix).
    ///
    /// A hybrid model's recurrent state is only known at the positions it
    /// was computed for: the cache falls back to the snapshot taken at the
    /// end of the last prompt (or to the start), and the next evaluation
    /// first re-evaluates the kept tokens after it. Attention-only models
    /// keep exactly `n` positions.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.tokens.len());
        self.tokens.truncate(n);
        self.cache.truncate(n);
        self.forget_shifts_after(n);
    }

    /// KV cache bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_defaults_and_bounds() {
        assert_eq!(resolve_ctx(None, 32768).unwrap(), 4096);
        assert_eq!(resolve_ctx(None, 512).unwrap(), 512);
        assert_eq!(resolve_ctx(Some(100), 512).unwrap(), 100);
        assert!(resolve_ctx(Some(0), 512).is_err());
        assert!(resolve_ctx(Some(513), 512).is_err());
        // a hostile context_length is never allocated by default
        assert_eq!(resolve_ctx(None, usize::MAX).unwrap(), 4096);
    }
}

//! Evaluating several tokens at once with the logits after every one of
//! them, and rolling back past the ones that turn out not to belong: the
//! target's half of speculative decoding (crate::speculative).
//!
//! A hybrid (qwen35) model's recurrent state cannot drop tokens: the span
//! runs its delta rule token by token, as decoding does (so its rows are
//! those of one-at-a-time evaluation, bit for bit), from a checkpoint of
//! the state; a rejection restores the checkpoint and evaluates the kept
//! tokens again the same way (recurrent.rs). Attention-only caches just
//! drop the rejected rows.

use super::Session;
use crate::error::{EngineError, Result};
use crate::kv_cache::KvCache;
use crate::model::{Model, Span};
use std::time::Instant;

impl Session<'_> {
    /// Evaluate `ids` as one span and write the logits after each of them
    /// to `logits` (`[ids.len()][n_vocab]`). A token's logits do not depend
    /// on what it is batched with (model.rs, `forward_batch`), so row `i` is
    /// bit-identical to what [`Session::step`] would give after `ids[i]`.
    /// The session's own logits become those of the last row. Timed as
    /// generation; the caller counts the tokens it keeps
    /// ([`Session::truncate_verified`]).
    pub fn eval_verify(&mut self, ids: &[u32], logits: &mut Vec<f32>) -> Result<()> {
        if self.cache.len() != self.tokens.len() {
            return Err(EngineError::Speculative(
                "verification on a cache that lags its tokens".into(),
            ));
        }
        let t = Instant::now();
        let nv = self.model.n_vocab();
        let d = self.model.config.n_embd;
        let mut hidden = Vec::with_capacity(ids.len() * d);
        forward_verify(self.model, &mut self.cache, ids, Some(&mut hidden))?;
        logits.resize(ids.len() * nv, 0.0);
        self.model.output_logits(&mut hidden, ids.len(), logits);
        self.tokens.extend_from_slice(ids);
        self.logits
            .copy_from_slice(&logits[(ids.len() - 1) * nv..ids.len() * nv]);
        self.timings.gen += t.elapsed();
        Ok(())
    }

    /// After [`Session::eval_verify`]: keep the first `keep` of the `n`
    /// tokens it evaluated (the rest were rejected drafts), with `logits`
    /// its rows; the session's logits become those after the last kept
    /// token. `keep` must be at least 1. A hybrid model evaluates the kept
    /// tokens again from its checkpoint (an error only if that fails).
    pub fn truncate_verified(&mut self, n: usize, keep: usize, logits: &[f32]) -> Result<()> {
        assert!(keep >= 1 && keep <= n && n <= self.tokens.len());
        let nv = self.model.n_vocab();
        let len = self.tokens.len() - n + keep;
        self.tokens.truncate(len);
        let t = Instant::now();
        let r = keep_verified(self.model, &mut self.cache, &self.tokens);
        self.timings.gen += t.elapsed();
        r?;
        self.logits
            .copy_from_slice(&logits[(keep - 1) * nv..keep * nv]);
        self.timings.n_gen += keep;
        Ok(())
    }
}

/// Evaluate `tokens` on `cache` as a span of drafts to verify: a recurrent
/// state is checkpointed first and runs its delta rule token by token
/// (recurrent.rs), so every row equals one-at-a-time evaluation's.
pub(crate) fn forward_verify(
    model: &Model,
    cache: &mut KvCache,
    tokens: &[u32],
    hidden: Option<&mut Vec<f32>>,
) -> Result<()> {
    cache.begin_verify();
    let r = model.forward_batch(&mut [Span {
        cache: &mut *cache,
        tokens,
        logits: None,
        hidden,
    }]);
    cache.end_verify();
    r
}

/// After a verified span on `cache`: keep the positions of `kept` (the
/// sequence without its rejected drafts). An attention-only cache just
/// drops the rows past it (the next evaluation overwrites them); a
/// recurrent state goes back to its checkpoint and the kept tokens after
/// it are evaluated again, the same way the span was.
pub(crate) fn keep_verified(model: &Model, cache: &mut KvCache, kept: &[u32]) -> Result<()> {
    let at = cache.rollback_verified(kept.len());
    if at < kept.len() {
        forward_verify(model, cache, &kept[at..], None)?;
    }
    Ok(())
}

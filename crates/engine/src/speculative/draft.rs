//! A smaller model with the target's vocabulary as the drafter (llama.cpp's
//! `-md`, common/speculative.cpp): it keeps its own cache in step with the
//! accepted sequence and proposes its greedy continuation.

use super::{draft_many, refuse_hybrid, DraftJob, Drafter};
use crate::error::Result;
use crate::kv_cache::KvCache;
use crate::model::Model;
use shohin_tokenizer::Tokenizer;

/// The most the vocabulary sizes may differ (llama.cpp's
/// `SPEC_VOCAB_MAX_SIZE_DIFFERENCE`): extra added tokens at the end.
const MAX_VOCAB_DIFFERENCE: usize = 128;
/// Token texts are compared from this id on (llama.cpp's
/// `SPEC_VOCAB_CHECK_START_TOKEN_ID`): the first few special tokens may
/// differ between otherwise equal vocabularies.
const CHECK_FROM_ID: usize = 5;

/// Whether a draft tokenizer can draft for a target's, as llama.cpp's
/// `common_speculative_are_compatible` decides: the same kind of
/// vocabulary, the same BOS / EOS handling, sizes within 128 tokens, and
/// the same token text from id 5 on. `Err` says what differs.
pub fn check_compatible(target: &Tokenizer, draft: &Tokenizer) -> Result<(), String> {
    if target.model() != draft.model() {
        return Err(format!(
            "the vocabulary types differ (target {:?}, draft {:?})",
            target.model(),
            draft.model()
        ));
    }
    if target.add_bos() != draft.add_bos() || (target.add_bos() && target.bos() != draft.bos()) {
        return Err(format!(
            "the BOS tokens differ (target add {} id {:?}, draft add {} id {:?})",
            target.add_bos(),
            target.bos(),
            draft.add_bos(),
            draft.bos()
        ));
    }
    if target.add_eos() != draft.add_eos() || (target.add_eos() && target.eos() != draft.eos()) {
        return Err(format!(
            "the EOS tokens differ (target add {} id {:?}, draft add {} id {:?})",
            target.add_eos(),
            target.eos(),
            draft.add_eos(),
            draft.eos()
        ));
    }
    let (nt, nd) = (target.n_vocab(), draft.n_vocab());
    if nt.abs_diff(nd) > MAX_VOCAB_DIFFERENCE {
        return Err(format!(
            "the vocabulary sizes differ by more than {MAX_VOCAB_DIFFERENCE} (target {nt}, \
             draft {nd})"
        ));
    }
    for id in CHECK_FROM_ID..nt.min(nd) {
        let (a, b) = (target.token_text(id as u32), draft.token_text(id as u32));
        if a != b {
            return Err(format!(
                "token {id} differs (target {:?}, draft {:?})",
                a.unwrap_or(""),
                b.unwrap_or("")
            ));
        }
    }
    Ok(())
}

/// A draft model and its cache.
#[derive(Debug)]
pub struct DraftModel<'m> {
    pub(super) model: &'m Model,
    pub(super) cache: KvCache,
    /// The tokens in `cache`.
    pub(super) tokens: Vec<u32>,
    /// The draft's logits after `tokens`.
    pub(super) logits: Vec<f32>,
    pub(super) p_min: f32,
}

impl<'m> DraftModel<'m> {
    /// A drafter over `model` with a context of `n_ctx` (the target's);
    /// drafting stops at a token whose probability is below `p_min`.
    pub fn new(model: &'m Model, n_ctx: usize, p_min: f32) -> Result<Self> {
        refuse_hybrid(model, "the draft")?;
        Ok(Self {
            model,
            cache: model.new_cache(n_ctx),
            tokens: Vec::new(),
            logits: vec![0.0; model.n_vocab()],
            p_min,
        })
    }

    /// Whether drafts can follow `history`: it fits the draft's context
    /// and holds only tokens the draft knows (a target vocabulary may be a
    /// little larger).
    fn can_draft(&self, history: &[u32]) -> bool {
        let nv = self.model.n_vocab();
        !history.is_empty()
            && history.len() < self.cache.n_ctx()
            && history.iter().all(|&t| (t as usize) < nv)
    }

    /// What the cache lacks to hold `history`: `None` when no draft can
    /// follow it; `Some(None)` when it holds it (and the logits after it);
    /// `Some(Some(from))` when `history[from..]` is to be evaluated after
    /// truncating to `from` (at least the last token is evaluated again,
    /// for its logits: after a round, the target's decision and the last
    /// accepted draft were never evaluated by the draft).
    pub(super) fn lacks(&self, history: &[u32]) -> Option<Option<usize>> {
        if !self.can_draft(history) {
            return None;
        }
        let common = self
            .tokens
            .iter()
            .zip(history)
            .take_while(|(a, b)| a == b)
            .count();
        if common == history.len() && common == self.tokens.len() {
            return Some(None);
        }
        Some(Some(common.min(history.len() - 1)))
    }

    /// Drop what follows the first `from` tokens, before evaluating more.
    pub(super) fn truncate(&mut self, from: usize) {
        self.tokens.truncate(from);
        self.cache.truncate(from);
    }

    /// Bring the cache toward holding `history`, evaluating at most
    /// `budget` tokens (at least one) of what differs from what it holds.
    /// `true` when the cache holds `history` and the logits after it;
    /// `false` while tokens are left, or when no draft can follow
    /// `history` at all.
    pub fn catch_up(&mut self, history: &[u32], budget: usize) -> Result<bool> {
        let from = match self.lacks(history) {
            None => return Ok(false),
            Some(None) => return Ok(true),
            Some(Some(from)) => from,
        };
        let to = history.len().min(from.saturating_add(budget.max(1)));
        self.truncate(from);
        self.model
            .forward(&mut self.cache, &history[from..to], &mut self.logits)?;
        self.tokens.extend_from_slice(&history[from..to]);
        Ok(to == history.len())
    }
}

impl Drafter for DraftModel<'_> {
    fn draft(&mut self, history: &[u32], max: usize, out: &mut Vec<u32>) -> Result<()> {
        // Caught up in the forward pass's own chunks, then the drafting of
        // `draft_many` for this one sequence.
        if !self.catch_up(history, usize::MAX)? {
            return Ok(()); // no draft can follow `history`
        }
        let job = DraftJob {
            drafter: self,
            history,
            max,
            out,
        };
        draft_many(&mut [job], 0)
    }
}

/// The arg-max of `logits` (lowest id on ties) and its softmax probability.
pub(super) fn top1(logits: &[f32]) -> (u32, f32) {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    let m = logits[best];
    let sum: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v - m).exp())
        .sum();
    (best as u32, (1.0 / sum) as f32)
}

#[cfg(test)]
mod tests {
    use super::top1;

    #[test]
    fn top1_is_argmax_and_softmax() {
        let (id, p) = top1(&[0.0, 2.0, 2.0, -1.0]);
        assert_eq!(id, 1);
        let z = 1.0 + 2.0 * 2f64.exp() + (-1f64).exp();
        assert!((f64::from(p) - 2f64.exp() / z).abs() < 1e-6);
    }
}

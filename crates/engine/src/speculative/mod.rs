//! Speculative decoding: a cheap drafter proposes the next few tokens, the
//! target model evaluates them all in one batch, and the tokens it agrees
//! with are kept: several tokens for about the price of one forward pass
//! when the drafts are good.
//!
//! Two drafters: a smaller model with the same vocabulary ([`DraftModel`],
//! llama.cpp's `-md`, common/speculative.cpp) and prompt lookup
//! ([`Lookup`]: continue an earlier occurrence of the last n-gram, the idea
//! of llama.cpp's tools/lookup and of "prompt lookup decoding").
//!
//! # Exactness
//!
//! Speculation only proposes; the [`Generator`] still decides every token
//! from the target's logits at its position, with its sampler chain,
//! penalties, grammar mask, stop strings and token limit, exactly as in
//! plain decoding. A draft token is kept when the Generator's decision at
//! its position equals it; the first disagreement ends the round, and the
//! decision there is the next token. Because a token's logits are
//! bit-identical whatever it is batched with (model.rs, `forward_batch`),
//! the logits after an accepted prefix are those plain decoding would have
//! computed, and the Generator draws the same random numbers in the same
//! order: the output is token-for-token that of plain decoding with the
//! same seed, greedy or sampled.
//!
//! For sampling this is the speculative-sampling rule of
//! tools/speculative/speculative.cpp (accept draft `x` with probability
//! `min(1, p(x) / q(x))`, on rejection draw from `norm(max(0, p - q))`)
//! for drafters that propose deterministically (`q` a point mass on `x`,
//! as both drafters here are: the draft model proposes its arg-max): the
//! acceptance probability is `p(x)` — the chance that the target's own
//! draw is `x` — and on rejection the draw is from `p` without `x`,
//! renormalised — the target's own draw given that it is not `x`.

use crate::error::{EngineError, Result};
use crate::generate::{Generator, Next, StepError};
use crate::model::Model;
use crate::session::Session;
use shohin_tokenizer::Tokenizer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod decide;
mod draft;
mod draft_batch;
mod lookup;

pub(crate) use decide::{decide, next_cap};
pub use draft::{check_compatible, DraftModel};
pub use draft_batch::{draft_many, DraftJob};
pub use lookup::{Lookup, DEFAULT_LOOKUP_NGRAM};

/// llama.cpp's `--draft-max` default of its `speculative` tools.
pub const DEFAULT_DRAFT_MAX: usize = 16;
/// Draft-model tokens below this top probability end the draft (llama.cpp's
/// `--draft-p-min` default in common/speculative.h before the split into
/// per-type parameters; the vendored version defaults to 0).
pub const DEFAULT_DRAFT_P_MIN: f32 = 0.75;

/// Proposes tokens to follow a sequence.
pub trait Drafter {
    /// Append to `out` up to `max` tokens likely to follow `history` (the
    /// whole sequence so far, ending with the token about to be verified).
    fn draft(&mut self, history: &[u32], max: usize, out: &mut Vec<u32>) -> Result<()>;
}

/// A drafter borrowed for a while (its state, e.g. a draft model's cache,
/// outlives the speculator).
impl<D: Drafter + ?Sized> Drafter for &mut D {
    fn draft(&mut self, history: &[u32], max: usize, out: &mut Vec<u32>) -> Result<()> {
        (**self).draft(history, max, out)
    }
}

/// How long drafts may be.
#[derive(Clone, Copy, Debug)]
pub struct SpecConfig {
    /// Tokens drafted per round at most (`--draft-max`).
    pub n_max: usize,
    /// Drafts shorter than this are not verified (`--draft-min`): a plain
    /// step is cheaper than a batch that keeps little.
    pub n_min: usize,
}

impl Default for SpecConfig {
    fn default() -> Self {
        Self {
            n_max: DEFAULT_DRAFT_MAX,
            n_min: 0,
        }
    }
}

/// What speculation did, for the timings.
#[derive(Clone, Copy, Debug, Default)]
pub struct DraftStats {
    /// Draft tokens verified by the target.
    pub drafted: usize,
    /// Draft tokens the target agreed with.
    pub accepted: usize,
    /// Verification batches run.
    pub rounds: usize,
    /// Time the drafter took (also counted in the session's generation
    /// time).
    pub draft_time: Duration,
    /// Time the Generator took to decide tokens (sampling, grammar).
    pub sampling: Duration,
}

impl DraftStats {
    /// Accepted / drafted (0 when nothing was drafted).
    pub fn acceptance(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }
}

/// Why a speculative step failed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Step(#[from] StepError),
}

/// The generation loop's step with speculation: call [`Self::next`] where
/// plain decoding samples a token and [`Self::commit`] where it evaluates
/// one (`Session::step`).
pub struct Speculator<'d> {
    drafter: Box<dyn Drafter + 'd>,
    cfg: SpecConfig,
    /// Tokens decided by the last verification, not yet handed out; all but
    /// the last are evaluated already.
    ready: VecDeque<Next>,
    draft: Vec<u32>,
    batch: Vec<u32>,
    history: Vec<u32>,
    /// The target's logits after each token of the batch.
    logits: Vec<f32>,
    /// Tokens to draft next round at most (<= `cfg.n_max`): a round that
    /// keeps every draft doubles it, one that rejects a draft sets it to
    /// one more than it kept (the "heuristic" schedule of Hugging Face's
    /// assisted generation). A rejected draft costs a wider batch, so
    /// where drafts are poor (lookup in text that copies nothing) rounds
    /// stay short and cheap; where they are good they grow back fast.
    cap: usize,
    pub stats: DraftStats,
}

impl std::fmt::Debug for Speculator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Speculator")
            .field("cfg", &self.cfg)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'d> Speculator<'d> {
    /// Speculation with `drafter`. A hybrid (qwen35) target verifies drafts
    /// token by token from a checkpoint of its recurrent state and, after
    /// a rejection, evaluates the kept tokens again (session/verify.rs).
    pub fn new(drafter: Box<dyn Drafter + 'd>, cfg: SpecConfig) -> Self {
        Self {
            drafter,
            cfg,
            ready: VecDeque::new(),
            draft: Vec::new(),
            batch: Vec::new(),
            history: Vec::new(),
            logits: Vec::new(),
            cap: cfg.n_max,
            stats: DraftStats::default(),
        }
    }

    /// The next token: one decided by the last verification, or else a
    /// plain decision from the session's logits (making room first, as the
    /// plain loop does).
    pub fn next(
        &mut self,
        s: &mut Session<'_>,
        gen: &mut Generator,
        tok: &Tokenizer,
    ) -> Result<Next, SpecError> {
        if let Some(n) = self.ready.pop_front() {
            return Ok(n);
        }
        let room = s.make_room()?;
        let t = Instant::now();
        let n = gen.next(tok, s.logits(), s.tokens(), room)?;
        self.stats.sampling += t.elapsed();
        Ok(n)
    }

    /// `id`, the unfinished token [`Self::next`] returned, goes into the
    /// sequence: when it is a verified draft it is there already; otherwise
    /// it is evaluated together with fresh drafts, and the Generator decides
    /// the tokens after it while they agree with the drafts.
    pub fn commit(
        &mut self,
        s: &mut Session<'_>,
        gen: &mut Generator,
        tok: &Tokenizer,
        id: u32,
    ) -> Result<(), SpecError> {
        if !self.ready.is_empty() {
            return Ok(());
        }
        let len = s.tokens().len();
        // Every decision of the round must see a context with room to
        // spare, so that it is what `make_room` would say without shifting
        // (the last decision follows `len + 1 + k` tokens); and drafts past
        // the token limit would only be thrown away.
        let left_ctx = s.n_ctx().saturating_sub(len + 3);
        let left_gen = gen
            .params()
            .max_tokens
            .saturating_sub(gen.n_generated() + 1);
        let max = self.cap.min(left_ctx).min(left_gen);
        self.draft.clear();
        if max > 0 && max >= self.cfg.n_min {
            self.history.clear();
            self.history.extend_from_slice(s.tokens());
            self.history.push(id);
            let t = Instant::now();
            self.drafter.draft(&self.history, max, &mut self.draft)?;
            let dt = t.elapsed();
            self.stats.draft_time += dt;
            s.timings.gen += dt;
            self.draft.truncate(max);
            // A draft vocabulary may be a little larger than the target's.
            let nv = s.model().n_vocab();
            if let Some(bad) = self.draft.iter().position(|&t| t as usize >= nv) {
                self.draft.truncate(bad);
            }
            if self.draft.len() < self.cfg.n_min {
                self.draft.clear();
            }
        }
        if self.draft.is_empty() {
            s.step(id)?;
            return Ok(());
        }
        self.batch.clear();
        self.batch.push(id);
        self.batch.extend_from_slice(&self.draft);
        s.eval_verify(&self.batch, &mut self.logits)?;

        let t = Instant::now();
        let nv = s.model().n_vocab();
        let k = self.draft.len();
        let (logits, tokens) = (&self.logits, s.tokens());
        let (decided, accepted) = decide(&self.draft, |j| {
            // The decision after batch[..=j], from the logits there.
            gen.next(
                tok,
                &logits[j * nv..(j + 1) * nv],
                &tokens[..len + j + 1],
                true,
            )
        });
        let keep = decided.len();
        for r in decided {
            self.ready.push_back(r?);
        }
        self.stats.sampling += t.elapsed();
        s.truncate_verified(self.batch.len(), keep, &self.logits)?;
        self.cap = next_cap(self.cap, k, accepted, self.cfg.n_max);
        self.stats.drafted += k;
        self.stats.accepted += accepted;
        self.stats.rounds += 1;
        Ok(())
    }
}

/// An error for a hybrid model (`what`: which one, for the message).
fn refuse_hybrid(m: &Model, what: &str) -> Result<()> {
    if m.config.hybrid.is_some() {
        return Err(EngineError::Speculative(format!(
            "{what} is a hybrid ({}) model, whose recurrent state cannot roll back past \
             rejected drafts",
            m.config.arch.name()
        )));
    }
    Ok(())
}

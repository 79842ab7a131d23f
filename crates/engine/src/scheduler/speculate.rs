//! Speculative decoding per slot (`serve --lookup`, `serve -md`): a
//! generating slot whose drafter proposes tokens evaluates `[its next token, drafts...]` as
//! one span of the step, beside the other slots' spans, with the logits
//! after every token of it; its Generator then decides the tokens position
//! by position and the drafts are kept while they equal the decisions
//! (crate::speculative explains why the output is exactly plain decoding's:
//! logits do not depend on the batch, and the Generator sees the same
//! logits and history, in the same order, as without speculation).
//!
//! Rejected drafts are rolled back with a truncation; a hybrid model's
//! recurrent state, which cannot drop tokens, is checkpointed before the
//! span, which runs its delta rule token by token, and after a rejection
//! goes back to the checkpoint and evaluates the kept tokens again
//! (`Slot::truncate_verified`, recurrent.rs). A span never
//! reaches the position where a context shift would happen: every decision
//! in it sees a context with room, as plain decoding would.
//!
//! With a draft model each slot keeps a draft cache beside its own (as
//! llama-server gives each slot its own draft context), brought in step
//! with the slot's tokens before it drafts: reused prefixes, forks and
//! context shifts are followed by comparing tokens, so only what differs is
//! evaluated. The draft runs on the engine thread, batched over the slots
//! (one forward of the draft per drafting depth); lagging draft caches are
//! caught up at most `n_prefill_busy` tokens per step in all, like the
//! target's own prompt chunks, so a long prompt does not stall the other
//! streams.

use super::engine_loop::State;
use super::slot::JobKind;
use super::slot::Slot;
use crate::model::Model;
use crate::speculative::{
    decide, draft_many, next_cap, DraftJob, DraftModel, Drafter, Lookup, SpecConfig,
};
use std::sync::Arc;

/// How the engine drafts.
#[derive(Clone, Debug)]
pub struct Speculation {
    pub source: DraftSource,
    /// Draft lengths (`--draft-max`, `--draft-min`).
    pub draft: SpecConfig,
}

/// Where drafts come from.
#[derive(Clone, Debug)]
pub enum DraftSource {
    /// Prompt lookup (`--lookup`): the longest n-gram matched
    /// (`--lookup-ngram`).
    Lookup { ngram: usize },
    /// A draft model with the target's vocabulary (`-md`; the caller checks
    /// it with [`crate::speculative::check_compatible`]); drafting stops at
    /// a token whose draft probability is below `p_min` (`--draft-p-min`).
    /// A hybrid draft, whose state cannot follow rolled-back tokens,
    /// drafts nothing.
    Model { model: Arc<Model>, p_min: f32 },
}

/// The per-slot draft caches of a draft model (empty for lookup).
pub(super) fn slot_drafters(cfg: &super::EngineConfig) -> Vec<DraftModel<'_>> {
    match cfg.speculation.as_ref().map(|s| &s.source) {
        Some(DraftSource::Model { model, p_min }) => (0..cfg.n_slots)
            .map_while(|_| DraftModel::new(model, cfg.n_ctx_slot, *p_min).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// Draft counts of a request (all its choices), for its usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DraftUsage {
    /// Draft tokens verified by the model.
    pub drafted: usize,
    /// Draft tokens equal to the decided token at their position.
    pub accepted: usize,
}

/// A slot's speculation between steps.
#[derive(Debug)]
pub(crate) struct SpecState {
    /// Tokens to draft next at most: a round that keeps every draft doubles
    /// it, one that rejects one sets it to one more than it kept (the
    /// schedule of `Speculator`), so that poor drafts stay cheap.
    cap: usize,
    /// The drafts in this step's span (empty: a plain decode token).
    pub draft: Vec<u32>,
    /// The span's final hidden rows, then the logits after each token.
    pub hidden: Vec<f32>,
    logits: Vec<f32>,
}

impl Default for SpecState {
    fn default() -> Self {
        Self {
            cap: usize::MAX,
            draft: Vec::new(),
            hidden: Vec::new(),
            logits: Vec::new(),
        }
    }
}

impl State<'_> {
    /// Whether requests speculate.
    pub(super) fn speculates(&self) -> bool {
        self.cfg.speculation.is_some()
    }

    /// How many tokens slot `i` may draft now (0: none). Every decision of
    /// its span must see room after it, so that no shift would happen
    /// inside it (the last follows `len + 1 + k` tokens, and the engine
    /// shifts at `n + 1 >= n_ctx`); drafts past the token limit would only
    /// be thrown away; fewer than `--draft-min` are not worth a wider span.
    fn draft_limit(&self, i: usize, sp: &Speculation) -> usize {
        let s = &self.slots[i];
        let Some(job) = s.job.as_ref() else { return 0 };
        let JobKind::Generate { gen, .. } = &job.kind else {
            return 0;
        };
        let left_ctx = self.cfg.n_ctx_slot.saturating_sub(s.tokens.len() + 3);
        let left_gen = gen
            .params()
            .max_tokens
            .saturating_sub(gen.n_generated() + 1);
        let max = job.spec.cap.min(sp.draft.n_max).min(left_ctx).min(left_gen);
        if max < sp.draft.n_min {
            0
        } else {
            max
        }
    }

    /// The spans of the generating slots `decode` (slot, next token): each
    /// `[id, drafts...]`, the drafts taking at most `spare` tokens of the
    /// step's batch in slot order (`spare` goes down by what they take).
    /// With a draft model, every slot's drafting runs batched
    /// (`draft_many`: one forward of the draft per depth for all slots).
    pub(super) fn decode_spans(
        &mut self,
        decode: &[(usize, u32)],
        spare: &mut usize,
    ) -> Vec<(usize, Vec<u32>)> {
        let cfg = self.cfg;
        let sp = cfg.speculation.as_ref().filter(|_| self.speculates());
        let limits: Vec<usize> = decode
            .iter()
            .map(|&(i, _)| sp.map_or(0, |sp| self.draft_limit(i, sp)))
            .collect();
        for &(i, _) in decode {
            if let Some(j) = self.slots[i].job.as_mut() {
                j.spec.draft.clear();
            }
        }
        if let Some(sp) = sp.filter(|_| limits.iter().any(|&m| m > 0)) {
            // Each history ends with its slot's `id`: pushed in place for
            // the drafting, not copied.
            for &(i, id) in decode {
                self.slots[i].tokens.push(id);
            }
            self.draft_all(sp, decode, &limits);
            for &(i, _) in decode {
                self.slots[i].tokens.pop();
            }
        }
        let nv = self.model.n_vocab();
        let n_min = sp.map_or(0, |sp| sp.draft.n_min);
        decode
            .iter()
            .map(|&(i, id)| {
                let mut span = vec![id];
                if let Some(job) = self.slots[i].job.as_mut() {
                    let out = &mut job.spec.draft;
                    // A draft vocabulary may be a little larger than the
                    // target's.
                    if let Some(bad) = out.iter().position(|&t| t as usize >= nv) {
                        out.truncate(bad);
                    }
                    out.truncate(*spare);
                    if out.len() < n_min {
                        out.clear();
                    }
                    *spare -= out.len();
                    span.extend_from_slice(out);
                }
                (i, span)
            })
            .collect()
    }

    /// Drafts for the slots of `decode` whose limit is above 0, into their
    /// jobs' `spec.draft` (a failing draft model drafts nothing).
    fn draft_all(&mut self, sp: &Speculation, decode: &[(usize, u32)], limits: &[usize]) {
        match &sp.source {
            DraftSource::Lookup { ngram } => {
                for (&(i, _), &m) in decode.iter().zip(limits) {
                    let s = &mut self.slots[i];
                    let Some(job) = s.job.as_mut().filter(|_| m > 0) else {
                        continue;
                    };
                    let out = &mut job.spec.draft;
                    if Lookup::new(*ngram).draft(&s.tokens, m, out).is_err() {
                        out.clear();
                    }
                }
            }
            DraftSource::Model { .. } => {
                let mut drafters: Vec<Option<&mut DraftModel<'_>>> =
                    self.drafters.iter_mut().map(Some).collect();
                let mut slots: Vec<Option<&mut Slot>> = self.slots.iter_mut().map(Some).collect();
                let mut jobs = Vec::new();
                for (&(i, _), &m) in decode.iter().zip(limits) {
                    if m == 0 {
                        continue;
                    }
                    let (Some(d), Some(s)) =
                        (drafters.get_mut(i).and_then(Option::take), slots[i].take())
                    else {
                        continue;
                    };
                    let Slot { tokens, job, .. } = s;
                    if let Some(job) = job.as_mut() {
                        jobs.push(DraftJob {
                            drafter: d,
                            history: &tokens[..],
                            max: m,
                            out: &mut job.spec.draft,
                        });
                    }
                }
                if draft_many(&mut jobs, self.cfg.n_prefill_busy).is_err() {
                    jobs.iter_mut().for_each(|j| j.out.clear());
                }
            }
        }
    }

    /// Whether slot `i`'s span this step carried drafts.
    pub(super) fn verifying(&self, i: usize) -> bool {
        self.slots[i]
            .job
            .as_ref()
            .is_some_and(|j| !j.spec.draft.is_empty())
    }

    /// After slot `i` evaluated `[id, drafts...]` (its `tokens` extended by
    /// them): decide the tokens from the logits at each position while they
    /// agree with the drafts, deliver them, and drop the rows past the last
    /// kept token. Returns how many tokens were decided.
    pub(super) fn verify(&mut self, i: usize) -> usize {
        let nv = self.model.n_vocab();
        let n_ctx = self.cfg.n_ctx_slot;
        let n_max = self.cfg.speculation.as_ref().map_or(1, |sp| sp.draft.n_max);
        let s = &mut self.slots[i];
        let Some(job) = s.job.as_mut() else { return 0 };
        let draft = std::mem::take(&mut job.spec.draft);
        let k = draft.len();
        let n = k + 1;
        let len0 = s.tokens.len() - n;
        let spec = &mut job.spec;
        spec.logits.resize(n * nv, 0.0);
        // The step's adapter set is still the model's: the same head as
        // the logits of a plain span.
        self.model
            .output_logits(&mut spec.hidden, n, &mut spec.logits);
        let JobKind::Generate { gen, .. } = &mut job.kind else {
            return 0;
        };
        let tokens = &s.tokens;
        let (mut decided, accepted) = decide(&draft, |j| {
            // The decision after `[.., id, drafts[..j]]`, as plain decoding
            // makes it after evaluating those tokens one by one.
            let history = &tokens[..len0 + j + 1];
            let row = &spec.logits[j * nv..(j + 1) * nv];
            gen.next(self.tok, row, history, history.len() < n_ctx)
                .map_err(|e| e.to_string())
        });
        let keep = decided.len();
        spec.cap = next_cap(spec.cap, k, accepted, n_max);
        let gid = job.group;
        // Cache rows and tokens agree again: the rejected drafts go (and a
        // finished draft, which plain decoding never evaluates).
        if let Err(e) = s.truncate_verified(self.model, len0 + keep) {
            // Only a failing re-evaluation of a hybrid state: the request
            // cannot go on.
            decided.truncate(1);
            decided[0] = Err(e.to_string());
        }
        metrics::counter!("shohin_draft_tokens_total").increment(k as u64);
        metrics::counter!("shohin_draft_accepted_total").increment(accepted as u64);
        // Counted before the tokens go out: the last may end the request.
        if let Some(d) = self
            .groups
            .get_mut(&gid)
            .and_then(|g| g.usage.draft.as_mut())
        {
            d.drafted += k;
            d.accepted += accepted;
        }
        let n_decided = decided.len();
        for r in decided {
            self.deliver(i, r);
        }
        n_decided
    }
}

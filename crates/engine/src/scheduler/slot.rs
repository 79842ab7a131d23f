//! A slot: one sequence's state in the model and the request running in it.
//!
//! A sequence's state is what `forward_batch` reads and extends: today the
//! KV rows of every layer. A hybrid model (Qwen3.5 / Bonsai 2: Gated
//! DeltaNet layers keep a fixed-size recurrent state per sequence instead
//! of KV rows) adds that state here; the scheduler only asks a slot how far
//! back it can be reused ([`Slot::reusable`]) and to copy a prefix, so it
//! does not change shape when the state does.

use super::speculate::SpecState;
use super::Pooling;
use crate::context_shift::n_discard;
use crate::generate::Generator;
use crate::kv_cache::KvCache;
use crate::lora::ActiveLora;
use crate::model::Model;

pub(crate) struct Slot {
    pub cache: KvCache,
    /// The tokens whose rows the cache holds (`cache.len()` of them).
    pub tokens: Vec<u32>,
    pub job: Option<Job>,
    /// Held for a choice of a request still evaluating its prompt.
    pub reserved: bool,
    /// A counter value of the last use, for least-recently-used eviction.
    pub last_used: u64,
    /// The LoRA set the rows were computed with (and the running job's
    /// set): rows are reusable only under the same set.
    pub lora: Vec<ActiveLora>,
    /// Rows `..exact` are what evaluating `tokens[..exact]` gives; past a
    /// context shift only the kept start is (the moved rows attended to the
    /// dropped tokens), so prefix reuse stops there.
    exact: usize,
}

/// A request (or one choice of it) running in a slot.
pub(crate) struct Job {
    /// The request's group (shared by its choices).
    pub group: u64,
    /// The choice index (OpenAI's `index`).
    pub index: usize,
    /// Prompt tokens not yet evaluated.
    pub pending: Vec<u32>,
    pub kind: JobKind,
    /// Logits after the last evaluated token (once the prompt is done).
    pub logits: Vec<f32>,
    /// When the job was admitted (orders prefill, oldest first).
    pub admitted: u64,
    /// Positions a context shift keeps at the start (`--keep`, resolved
    /// against this request's prompt).
    pub n_keep: usize,
    /// The clock when the job last ran in a step (its admission before
    /// that): the step runs the LoRA set of the job that waited longest.
    pub last_run: u64,
    /// Speculative decoding's state (unused without it).
    pub spec: SpecState,
}

pub(crate) enum JobKind {
    /// `feed`: the sampled token to evaluate next step.
    Generate {
        gen: Box<Generator>,
        feed: Option<u32>,
    },
    /// `hidden`: the step's hidden rows; `acc`: their sum, first or last
    /// row so far, by pooling; `n`: tokens pooled.
    Embed {
        pooling: Pooling,
        hidden: Vec<f32>,
        acc: Vec<f32>,
        n: usize,
    },
}

impl Slot {
    pub fn new(cache: KvCache) -> Self {
        Self {
            cache,
            tokens: Vec::new(),
            job: None,
            reserved: false,
            last_used: 0,
            lora: Vec::new(),
            exact: usize::MAX,
        }
    }

    pub fn is_free(&self) -> bool {
        self.job.is_none() && !self.reserved
    }

    /// The longest prefix of `prompt` this slot holds.
    pub fn common_prefix(&self, prompt: &[u32]) -> usize {
        self.tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// How many of the first `want` positions can be kept and built upon.
    /// For KV rows, all of them; a recurrent state could only be resumed at
    /// the positions where it was saved.
    pub fn reusable(&self, want: usize) -> usize {
        self.cache
            .resumable(want.min(self.tokens.len()).min(self.exact))
    }

    /// Keep the first `n` positions only (fewer when a recurrent state
    /// cannot resume at `n`: see [`Self::reusable`]).
    pub fn truncate(&mut self, n: usize) {
        self.cache.truncate(n);
        self.tokens.truncate(self.cache.len());
        if self.tokens.len() <= self.exact {
            self.exact = usize::MAX;
        }
    }

    /// After a verified span (speculate.rs): keep the first `n` positions.
    /// A hybrid model's recurrent state goes back to its checkpoint from
    /// before the span, and the kept tokens after it are evaluated again,
    /// token by token as the span was (recurrent.rs), under the same LoRA
    /// set (the step's, still the model's).
    pub fn truncate_verified(&mut self, model: &Model, n: usize) -> crate::Result<()> {
        self.tokens.truncate(n);
        crate::session::keep_verified(model, &mut self.cache, &self.tokens)?;
        if self.tokens.len() <= self.exact {
            self.exact = usize::MAX;
        }
        Ok(())
    }

    /// Make this slot hold the first `n` positions of `src` (fewer when a
    /// recurrent state cannot resume at `n`), computed under `src`'s LoRA
    /// set.
    pub fn copy_prefix(&mut self, src: &Slot, n: usize) {
        self.cache.copy_prefix_from(&src.cache, n);
        self.lora.clone_from(&src.lora);
        self.tokens.clear();
        self.tokens
            .extend_from_slice(&src.tokens[..self.cache.len()]);
        self.exact = if self.tokens.len() <= src.exact {
            usize::MAX
        } else {
            src.exact
        };
    }

    /// Context shift: drop half of the positions after the job's kept
    /// start (llama-server's slot shift, tools/server/server-context.cpp)
    /// and keep `tokens` in step. Returns how many went (0: none can).
    pub fn shift(&mut self, model: &Model) -> crate::Result<usize> {
        let len = self.tokens.len();
        let keep = self.job.as_ref().map_or(0, |j| j.n_keep).min(len);
        let d = n_discard(len, keep);
        if d == 0 {
            return Ok(0);
        }
        model.shift_cache(&mut self.cache, keep, d)?;
        self.tokens.drain(keep..keep + d);
        self.exact = self.exact.min(keep);
        Ok(d)
    }
}

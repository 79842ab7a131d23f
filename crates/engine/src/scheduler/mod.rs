//! Continuous batching: one engine thread owns the model and runs steps
//! that mix the decode tokens of every active sequence with chunks of new
//! prompts (llama.cpp server's slots and mixed decode + prefill batch,
//! mistral.rs's scheduler). Callers submit a [`Request`] from any thread
//! and read its [`Event`]s from a channel; dropping the receiver cancels
//! the request within one step and frees its slot.
//!
//! - `n_slots` sequences run at once, each with its own KV cache of
//!   `n_ctx_slot` positions (the server's `--ctx-size` is the total,
//!   shared out evenly, as llama-server's `-c` / `-np`).
//! - A slot keeps its tokens and cache after its request ends; a new
//!   request takes the free slot holding the longest prefix of its prompt
//!   and evaluates only the rest (prefix caching), or copies that prefix
//!   from a busy slot. Reuse is exact: a token's logits do not depend on
//!   its batch (see [`crate::model::Model::forward_batch`]).
//! - `n` choices of one prompt evaluate the prompt once and then fork the
//!   sequence into `n` slots.
//! - Each request names its LoRA adapters ([`Request::lora`]; llama-server's
//!   per-request `lora`). The engine owns the model's active set: a step
//!   runs the spans of one set only, switching the set with
//!   [`Model::set_adapters`] before the step when it changes (llama-server
//!   does not batch slots whose sets differ either, `can_batch_with`). The
//!   sets take turns: each step runs the set that ran least recently (ties:
//!   the oldest request's), so no set waits more than one step per other
//!   set. A slot's rows are reused only by a request with the same set:
//!   rows computed under other adapters are different rows.

mod admit;
mod engine_loop;
mod prompt_end;
mod slot;
mod speculate;

pub use speculate::{DraftSource, DraftUsage, Speculation};

use crate::generate::{GenParams, Next};
use crate::lora::ActiveLora;
use crate::model::Model;
use crate::sampler::SamplerError;
use shohin_tokenizer::Tokenizer;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tmpsc;

/// How the engine shares out the model.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Sequences decoded together (`--parallel`).
    pub n_slots: usize,
    /// Positions of each slot's cache.
    pub n_ctx_slot: usize,
    /// Requests waiting for a slot at most (`--max-queue`); more are refused.
    pub max_queue: usize,
    /// Tokens per step at most: decode tokens plus prompt chunks.
    pub n_batch: usize,
    /// Prompt tokens per step at most while other sequences are decoding,
    /// so that a long prompt does not stall their streams.
    pub n_prefill_busy: usize,
    /// Context shift (`--context-shift`, off by default as in
    /// llama-server): a generation that fills its slot drops half of what
    /// follows the kept start of its prompt instead of ending with
    /// `length`. Prompts must still fit a slot.
    pub context_shift: Option<crate::context_shift::Keep>,
    /// Speculative decoding per slot (`--lookup` or `-md`; off by
    /// default). The output is the same as without it (a hybrid model's
    /// recurrent state is checkpointed for it: speculate.rs).
    pub speculation: Option<Speculation>,
}

impl EngineConfig {
    /// `n_slots` slots of `n_ctx_slot` positions, default batching: steps
    /// of at most 256 tokens (half of `run`'s prompt chunk: the same prompt
    /// speed, half the activation memory), prompts taking at most 128 of
    /// them while other requests stream.
    pub fn new(n_slots: usize, n_ctx_slot: usize) -> Self {
        Self {
            n_slots,
            n_ctx_slot,
            max_queue: 256,
            n_batch: 256,
            n_prefill_busy: 128,
            context_shift: None,
            speculation: None,
        }
    }
}

/// How an embedding pools the final hidden states of the prompt's tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Last,
    Cls,
}

/// What to do with a prompt.
#[derive(Clone, Debug)]
pub enum Task {
    /// Sample `n` choices (choice `i` seeded with `seed + i`).
    Generate { params: GenParams, n: usize },
    /// The pooled, L2-normalised final hidden state.
    Embed { pooling: Pooling },
}

#[derive(Clone, Debug)]
pub struct Request {
    pub prompt: Vec<u32>,
    pub task: Task,
    /// The LoRA adapters (and their user scales) this request runs with,
    /// in the order they are applied; empty: the base model. Adapters at
    /// scale 0 are dropped at submission (they add nothing), so such a set
    /// shares batches and cached prefixes with the set without them.
    pub lora: Vec<ActiveLora>,
}

/// Whether two normalised adapter sets compute the same rows: the same
/// adapters (by identity) with bit-equal scales, in the same order (the
/// deltas are summed in that order).
pub(crate) fn same_lora(a: &[ActiveLora], b: &[ActiveLora]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            Arc::ptr_eq(&x.adapter, &y.adapter) && x.scale.to_bits() == y.scale.to_bits()
        })
}

/// Token counts and times of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens taken from the prefix cache instead of evaluated.
    pub cached_tokens: usize,
    /// Tokens sampled, over all choices.
    pub completion_tokens: usize,
    /// From submission to the first sampled token.
    pub time_to_first_token: Duration,
    /// From the first sampled token to the last.
    pub generation: Duration,
    /// Draft counts, when the engine speculates for generations.
    pub draft: Option<DraftUsage>,
}

/// What a request's channel carries, in order: tokens (each choice's ends
/// with one whose `finish` is set) or one embedding, then `Done`.
#[derive(Clone, Debug)]
pub enum Event {
    Token {
        index: usize,
        next: Next,
    },
    Embedding(Vec<f32>),
    Done(Usage),
    /// The request failed after it was accepted (nothing follows).
    Error(String),
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the prompt has {n_prompt} tokens but a slot's context holds {n_ctx}")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    #[error("n = {n} choices, but the server has {n_slots} slots")]
    TooManyChoices { n: usize, n_slots: usize },
    #[error("token id {id} is out of the vocabulary (size {n_vocab})")]
    TokenOutOfVocab { id: u32, n_vocab: usize },
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    /// An adapter that does not fit the model, or a scale that is not a
    /// finite number.
    #[error("LoRA adapter {index}: {why}")]
    Lora { index: usize, why: String },
    #[error("{queued} requests are waiting already (--max-queue)")]
    QueueFull { queued: usize },
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// Load figures, read without stopping the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub n_slots: usize,
    pub n_ctx_slot: usize,
    /// Requests waiting for a slot.
    pub queued: usize,
    /// Slots running a request.
    pub active_slots: usize,
    /// Cache positions held by running requests.
    pub kv_cells_used: usize,
    /// Cache positions held by idle slots for prefix reuse.
    pub kv_cells_cached: usize,
}

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicUsize,
    active_slots: AtomicUsize,
    kv_cells_used: AtomicUsize,
    kv_cells_cached: AtomicUsize,
    stopping: AtomicBool,
}

pub(crate) struct Submitted {
    req: Request,
    tx: tmpsc::UnboundedSender<Event>,
    at: Instant,
}

enum Cmd {
    Submit(Box<Submitted>),
    /// Cancel everything running or queued (shutdown after a grace time).
    CancelAll,
    Stop,
}

/// The handle to the engine thread; dropping it stops the thread.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    model: Arc<Model>,
    tx: mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Submit(_) => "Submit",
            Cmd::CancelAll => "CancelAll",
            Cmd::Stop => "Stop",
        })
    }
}

impl Engine {
    /// Start the engine thread with `n_slots` caches of `n_ctx_slot`
    /// positions (allocated zeroed: untouched positions cost no memory).
    pub fn start(model: Arc<Model>, tok: Arc<Tokenizer>, cfg: EngineConfig) -> Self {
        assert!(cfg.n_slots >= 1 && cfg.n_ctx_slot >= 1 && cfg.n_batch >= 1);
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let th = {
            let (model, shared, cfg) = (model.clone(), shared.clone(), cfg.clone());
            std::thread::Builder::new()
                .name("shohin-engine".into())
                .spawn(move || engine_loop::run(&model, &tok, &cfg, &shared, rx))
                .expect("spawn the engine thread")
        };
        Self {
            cfg,
            model,
            tx,
            shared,
            thread: Some(th),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Queue a request; its events arrive on the returned channel. Checks
    /// everything that can be checked before a slot is free.
    pub fn submit(&self, mut req: Request) -> Result<tmpsc::UnboundedReceiver<Event>, SubmitError> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(SubmitError::ShuttingDown);
        }
        if req.prompt.is_empty() {
            return Err(SubmitError::EmptyPrompt);
        }
        let n_vocab = self.model.n_vocab();
        if let Some(&id) = req.prompt.iter().find(|&&id| id as usize >= n_vocab) {
            return Err(SubmitError::TokenOutOfVocab { id, n_vocab });
        }
        for (index, a) in req.lora.iter().enumerate() {
            if !a.scale.is_finite() {
                return Err(SubmitError::Lora {
                    index,
                    why: format!("scale {} is not a finite number", a.scale),
                });
            }
            a.adapter
                .check(&self.model)
                .map_err(|e| SubmitError::Lora {
                    index,
                    why: e.to_string(),
                })?;
        }
        // Scale 0 adds nothing: without it, the set batches and shares
        // cached prefixes with the set that never had it.
        req.lora.retain(|a| a.scale != 0.0);
        let n_ctx = self.cfg.n_ctx_slot;
        match &req.task {
            Task::Generate { params, n } => {
                // Room for the prompt and at least one generated token.
                if req.prompt.len() >= n_ctx {
                    return Err(SubmitError::PromptTooLong {
                        n_prompt: req.prompt.len(),
                        n_ctx,
                    });
                }
                if *n == 0 || *n > self.cfg.n_slots {
                    return Err(SubmitError::TooManyChoices {
                        n: *n,
                        n_slots: self.cfg.n_slots,
                    });
                }
                crate::sampler::Sampler::new(params.sampling)?;
            }
            Task::Embed { .. } => {
                if req.prompt.len() > n_ctx {
                    return Err(SubmitError::PromptTooLong {
                        n_prompt: req.prompt.len(),
                        n_ctx,
                    });
                }
            }
        }
        // Count it queued before it is sent, so that a burst cannot pass
        // the limit between the check and the engine's receipt.
        let queued = self.shared.queued.fetch_add(1, Ordering::SeqCst);
        if queued >= self.cfg.max_queue {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::QueueFull { queued });
        }
        let (tx, rx) = tmpsc::unbounded_channel();
        let sub = Submitted {
            req,
            tx,
            at: Instant::now(),
        };
        if self.tx.send(Cmd::Submit(Box::new(sub))).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::ShuttingDown);
        }
        Ok(rx)
    }

    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            n_slots: self.cfg.n_slots,
            n_ctx_slot: self.cfg.n_ctx_slot,
            queued: s.queued.load(Ordering::SeqCst),
            active_slots: s.active_slots.load(Ordering::SeqCst),
            kv_cells_used: s.kv_cells_used.load(Ordering::SeqCst),
            kv_cells_cached: s.kv_cells_cached.load(Ordering::SeqCst),
        }
    }

    /// Refuse new requests from now on (graceful shutdown's first step).
    pub fn stop_accepting(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
    }

    /// Cancel every running and queued request: each ends with a
    /// `cancelled` finish (graceful shutdown's deadline).
    pub fn cancel_all(&self) {
        let _ = self.tx.send(Cmd::CancelAll);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

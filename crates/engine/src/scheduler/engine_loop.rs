//! The engine thread: admit queued requests into slots, build a step of
//! decode tokens and prompt chunks, run it, sample, stream, repeat.

use super::slot::{Job, JobKind, Slot};
use super::{same_lora, Cmd, EngineConfig, Event, Shared, Submitted, Task, Usage};
use crate::generate::{FinishReason, Next};
use crate::lora::ActiveLora;
use crate::model::{Model, Span};
use rayon::prelude::*;
use shohin_tokenizer::Tokenizer;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;
use tokio::sync::mpsc as tmpsc;

/// A request in flight: its channel and what its `Done` will report.
pub(super) struct Group {
    pub(super) tx: tmpsc::UnboundedSender<Event>,
    /// Choices still running.
    pub(super) running: usize,
    /// Slots reserved for choices 1.. until the prompt is done.
    pub(super) reserved: Vec<usize>,
    /// `(params, n)` of a generation, kept to seed the forked choices.
    pub(super) task: Task,
    pub(super) usage: Usage,
    pub(super) submitted: Instant,
    pub(super) first_token: Option<Instant>,
}

pub(super) struct State<'a> {
    pub(super) model: &'a Model,
    pub(super) tok: &'a Tokenizer,
    pub(super) cfg: &'a EngineConfig,
    pub(super) shared: &'a Shared,
    pub(super) slots: Vec<Slot>,
    /// Slot `i`'s draft cache, with a draft model (speculate.rs).
    pub(super) drafters: Vec<crate::speculative::DraftModel<'a>>,
    pub(super) queue: VecDeque<Box<Submitted>>,
    pub(super) groups: HashMap<u64, Group>,
    pub(super) next_group: u64,
    clock: u64,
}

pub(super) fn run(
    model: &Model,
    tok: &Tokenizer,
    cfg: &EngineConfig,
    shared: &Shared,
    rx: mpsc::Receiver<Cmd>,
) {
    let mut st = State {
        model,
        tok,
        cfg,
        shared,
        slots: (0..cfg.n_slots)
            .map(|_| Slot::new(model.new_cache(cfg.n_ctx_slot)))
            .collect(),
        drafters: super::speculate::slot_drafters(cfg),
        queue: VecDeque::new(),
        groups: HashMap::new(),
        next_group: 0,
        clock: 0,
    };
    loop {
        // Block only when there is nothing to do.
        let idle = st.groups.is_empty() && st.queue.is_empty();
        let first = if idle {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            }
        } else {
            None
        };
        for cmd in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match cmd {
                Cmd::Submit(s) => st.queue.push_back(s),
                Cmd::CancelAll => st.cancel_all(),
                Cmd::Stop => {
                    st.cancel_all();
                    return;
                }
            }
        }
        // A panic in a step is a bug; it must not take the engine down with
        // it: the requests of the step fail and the slots start over.
        let step = std::panic::catch_unwind(AssertUnwindSafe(|| {
            st.drop_cancelled();
            st.admit();
            st.step();
        }));
        if step.is_err() {
            st.fail_all("internal error in the engine step (a bug; see the server log)");
        }
        st.publish();
    }
}

impl State<'_> {
    pub(super) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Requests whose receiver is gone (the client disconnected) stop now
    /// and free their slots; the slots keep their tokens for reuse.
    fn drop_cancelled(&mut self) {
        let gone: Vec<u64> = self
            .groups
            .iter()
            .filter(|(_, g)| g.tx.is_closed())
            .map(|(&id, _)| id)
            .collect();
        for id in gone {
            self.end_group(id);
        }
        let before = self.queue.len();
        self.queue.retain(|s| !s.tx.is_closed());
        let removed = before - self.queue.len();
        self.shared.queued.fetch_sub(removed, Ordering::SeqCst);
    }

    /// Remove a group: free its slots and reservations.
    fn end_group(&mut self, id: u64) {
        for s in &mut self.slots {
            if s.job.as_ref().is_some_and(|j| j.group == id) {
                // The slot keeps what it evaluated (its tokens and cache
                // rows agree after every step) for prefix reuse.
                s.job = None;
            }
        }
        if let Some(g) = self.groups.remove(&id) {
            for r in g.reserved {
                self.slots[r].reserved = false;
            }
        }
    }

    fn cancel_all(&mut self) {
        let ids: Vec<u64> = self.groups.keys().copied().collect();
        for id in ids {
            let g = &self.groups[&id];
            for s in &self.slots {
                if let Some(j) = s.job.as_ref().filter(|j| j.group == id) {
                    let _ = g.tx.send(Event::Token {
                        index: j.index,
                        next: Next {
                            id: 0,
                            text: String::new(),
                            logprob: None,
                            finish: Some(FinishReason::Cancelled),
                            stop_sequence: None,
                        },
                    });
                }
            }
            let _ = g.tx.send(Event::Done(g.usage));
            self.end_group(id);
        }
        for s in self.queue.drain(..) {
            let _ =
                s.tx.send(Event::Error("the server is shutting down".into()));
        }
        self.shared.queued.store(0, Ordering::SeqCst);
    }

    fn fail_all(&mut self, why: &str) {
        for g in self.groups.values() {
            let _ = g.tx.send(Event::Error(why.to_string()));
        }
        self.groups.clear();
        for s in &mut self.slots {
            s.job = None;
            s.reserved = false;
            s.truncate(0);
        }
    }

    /// The adapter set of the next step: the set of the runnable job that
    /// ran least recently (ties: the oldest admitted), so that the sets
    /// take turns and a new request's set runs after those waiting longer.
    /// `None`: nothing to run.
    fn step_lora(&self) -> Option<Vec<ActiveLora>> {
        self.slots
            .iter()
            .filter_map(|s| {
                let j = s.job.as_ref()?;
                let runnable = !j.pending.is_empty()
                    || matches!(j.kind, JobKind::Generate { feed: Some(_), .. });
                runnable.then_some(((j.last_run, j.admitted), s))
            })
            .min_by_key(|(key, _)| *key)
            .map(|(_, s)| s.lora.clone())
    }

    /// Makes `set` the model's active adapters unless it is already (read
    /// back from the model rather than remembered, so that a set made by
    /// the loader is replaced; the engine owns the set from then on).
    fn use_lora(&self, set: &[ActiveLora]) -> crate::Result<()> {
        if same_lora(&self.model.adapters(), set) {
            return Ok(());
        }
        self.model.set_adapters(set.to_vec())
    }

    /// One forward step over the running slots of one adapter set, then
    /// sampling.
    fn step(&mut self) {
        let Some(set) = self.step_lora() else {
            return;
        };
        // The step's time for the token-rate metrics includes drafting.
        let t_step = Instant::now();
        let in_set = |s: &Slot| same_lora(&s.lora, &set);
        // Decode tokens first (one per generating slot), then prompt chunks,
        // oldest request first, within the step's budget.
        let decode: Vec<(usize, u32)> = (self.slots.iter().enumerate())
            .filter(|(_, s)| in_set(s))
            .filter_map(|(i, s)| match &s.job {
                Some(Job {
                    kind: JobKind::Generate { feed: Some(id), .. },
                    ..
                }) => Some((i, *id)),
                _ => None,
            })
            .collect();
        // Drafts (speculate.rs) take what the batch has beyond one token
        // per generating slot.
        let mut spare = self.cfg.n_batch.saturating_sub(decode.len());
        let mut plan = self.decode_spans(&decode, &mut spare);
        let n_decode = plan.len();
        let n_decode_tokens: usize = plan.iter().map(|(_, t)| t.len()).sum();
        let mut budget = self.cfg.n_batch.saturating_sub(n_decode_tokens);
        if n_decode > 0 {
            budget = budget.min(self.cfg.n_prefill_busy);
        }
        let mut prefill: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| in_set(s))
            .filter_map(|(i, s)| {
                s.job
                    .as_ref()
                    .filter(|j| !j.pending.is_empty())
                    .map(|j| (j.admitted, i))
            })
            .collect();
        prefill.sort_unstable();
        for (_, i) in prefill {
            if budget == 0 {
                break;
            }
            let job = self.slots[i].job.as_mut().expect("filtered");
            let take = budget.min(job.pending.len());
            let chunk: Vec<u32> = job.pending.drain(..take).collect();
            budget -= take;
            plan.push((i, chunk));
        }
        if plan.is_empty() {
            return;
        }
        let tick = self.tick();
        for (i, _) in &plan {
            if let Some(j) = self.slots[*i].job.as_mut() {
                j.last_run = tick;
            }
        }
        let nv = self.model.n_vocab();
        let result = self.use_lora(&set).and_then(|()| {
            let mut slot_refs: Vec<Option<&mut Slot>> = self.slots.iter_mut().map(Some).collect();
            let mut spans: Vec<Span<'_>> = Vec::with_capacity(plan.len());
            for (i, toks) in &plan {
                let s = slot_refs[*i].take().expect("one span per slot");
                let job = s.job.as_mut().expect("planned slots run a job");
                let done = job.pending.is_empty();
                let (want_logits, hidden) = match &mut job.kind {
                    // A verified span: every token's logits (speculate.rs);
                    // a recurrent state is checkpointed before it.
                    JobKind::Generate { .. } if !job.spec.draft.is_empty() => {
                        job.spec.hidden.clear();
                        s.cache.begin_verify();
                        (false, Some(&mut job.spec.hidden))
                    }
                    JobKind::Generate { .. } => (done, None),
                    JobKind::Embed { hidden, .. } => {
                        hidden.clear();
                        (false, Some(hidden))
                    }
                };
                job.logits.resize(nv, 0.0);
                spans.push(Span {
                    cache: &mut s.cache,
                    tokens: toks,
                    logits: want_logits.then_some(&mut job.logits[..]),
                    hidden,
                });
            }
            let r = self.model.forward_batch(&mut spans);
            for sp in spans.iter_mut() {
                sp.cache.end_verify();
            }
            r
        });
        if let Err(e) = result {
            for (i, _) in &plan {
                if let Some(g) = self.slots[*i].job.as_ref().map(|j| j.group) {
                    if let Some(gr) = self.groups.get(&g) {
                        let _ = gr.tx.send(Event::Error(e.to_string()));
                    }
                    self.end_group(g);
                }
            }
            return;
        }
        let n_prompt: usize = plan[n_decode..].iter().map(|(_, t)| t.len()).sum();
        metrics::counter!("shohin_prompt_tokens_total").increment(n_prompt as u64);
        // Tokens this step decides for the running generations: one per
        // plain decode span, all those a verified span keeps.
        let mut n_out = 0;
        let mut to_sample = Vec::new();
        for (k, (i, toks)) in plan.into_iter().enumerate() {
            self.slots[i].tokens.extend_from_slice(&toks);
            if self.verifying(i) {
                n_out += self.verify(i);
                continue;
            }
            n_out += usize::from(k < n_decode);
            to_sample.extend(self.after(i));
        }
        if n_decode > 0 {
            let secs = t_step.elapsed().as_secs_f64();
            metrics::histogram!("shohin_time_per_output_token_seconds").record(secs);
            metrics::gauge!("shohin_tokens_per_second").set(n_out as f64 / secs.max(1e-9));
        }
        self.sample(&to_sample);
    }

    /// Sample the next token of each slot in `which` (in parallel on the
    /// backend's threads: top-k over a 150k vocabulary takes about a
    /// millisecond per sequence), then send them in order.
    pub(super) fn sample(&mut self, which: &[usize]) {
        if which.is_empty() {
            return;
        }
        let n_ctx = self.cfg.n_ctx_slot;
        let which = &self.shift_full(which)[..];
        let tok = self.tok;
        let mut picked: Vec<(usize, &mut Slot)> = self
            .slots
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| which.contains(i))
            .collect();
        let mut results: Vec<(usize, Result<Next, String>)> = Vec::with_capacity(picked.len());
        let mut run = || {
            results = picked
                .par_iter_mut()
                .map(|(i, s)| {
                    let room = s.tokens.len() < n_ctx;
                    let job = s.job.as_mut().expect("a sampled slot runs a job");
                    let JobKind::Generate { gen, .. } = &mut job.kind else {
                        unreachable!("only generations are sampled")
                    };
                    let r = gen.next(tok, &job.logits, &s.tokens, room);
                    (*i, r.map_err(|e| e.to_string()))
                })
                .collect();
        };
        self.model.backend.install(&mut run);
        for (i, r) in results {
            self.deliver(i, r);
        }
    }

    /// With context shift on, shift the slots of `which` whose cache has
    /// one position left, so that the token they sample next fits
    /// (llama-server's `pre_decode`, same step). Returns the slots still to sample: a failed shift
    /// ends its request with an error.
    fn shift_full(&mut self, which: &[usize]) -> Vec<usize> {
        let n_ctx = self.cfg.n_ctx_slot;
        if self.cfg.context_shift.is_none() {
            return which.to_vec();
        }
        let mut keep = Vec::with_capacity(which.len());
        for &i in which {
            // llama-server's pre_decode shifts at `n_tokens + 1 >= n_ctx`.
            if self.slots[i].tokens.len() + 1 < n_ctx {
                keep.push(i);
                continue;
            }
            match self.slots[i].shift(self.model) {
                Ok(d) => {
                    metrics::counter!("shohin_context_shifts_total").increment(1);
                    metrics::counter!("shohin_context_shift_tokens_total").increment(d as u64);
                    keep.push(i);
                }
                Err(e) => {
                    if let Some(g) = self.slots[i].job.as_ref().map(|j| j.group) {
                        if let Some(gr) = self.groups.get(&g) {
                            let _ = gr.tx.send(Event::Error(e.to_string()));
                        }
                        self.end_group(g);
                    }
                }
            }
        }
        keep
    }

    /// Send slot `i`'s sampled token (or its error) and do the bookkeeping.
    pub(super) fn deliver(&mut self, i: usize, r: Result<Next, String>) {
        let s = &mut self.slots[i];
        let Some(job) = s.job.as_mut() else { return };
        let (gid, index) = (job.group, job.index);
        let next = match r {
            Ok(n) => n,
            Err(e) => {
                if let Some(g) = self.groups.get(&gid) {
                    let _ = g.tx.send(Event::Error(e));
                }
                self.end_group(gid);
                return;
            }
        };
        let JobKind::Generate { feed, .. } = &mut job.kind else {
            return;
        };
        let finished = next.finish.is_some();
        *feed = (!finished).then_some(next.id);
        if finished {
            s.job = None;
        }
        let now = Instant::now();
        metrics::counter!("shohin_generated_tokens_total").increment(1);
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        if g.first_token.is_none() {
            g.first_token = Some(now);
            g.usage.time_to_first_token = now - g.submitted;
            metrics::histogram!("shohin_time_to_first_token_seconds")
                .record(g.usage.time_to_first_token.as_secs_f64());
        }
        g.usage.completion_tokens += 1;
        let _ = g.tx.send(Event::Token { index, next });
        if finished {
            g.running -= 1;
            if g.running == 0 {
                g.usage.generation = now - g.first_token.unwrap_or(now);
                let _ = g.tx.send(Event::Done(g.usage));
                self.groups.remove(&gid);
            }
        }
    }

    /// Share the load figures with [`super::Engine::stats`] and `/metrics`.
    fn publish(&self) {
        let (mut active, mut used, mut cached) = (0, 0, 0);
        for s in &self.slots {
            if s.job.is_some() || s.reserved {
                active += 1;
                used += s.tokens.len();
            } else {
                cached += s.tokens.len();
            }
        }
        let sh = self.shared;
        sh.active_slots.store(active, Ordering::SeqCst);
        sh.kv_cells_used.store(used, Ordering::SeqCst);
        sh.kv_cells_cached.store(cached, Ordering::SeqCst);
        metrics::gauge!("shohin_active_slots").set(active as f64);
        metrics::gauge!("shohin_kv_cells_used").set(used as f64);
        metrics::gauge!("shohin_kv_cells_cached").set(cached as f64);
        metrics::gauge!("shohin_queue_depth").set(sh.queued.load(Ordering::SeqCst) as f64);
    }
}

/// Two distinct slots, one mutable.
pub(super) fn pair(slots: &mut [Slot], a: usize, b: usize) -> (&mut Slot, &Slot) {
    assert_ne!(a, b);
    if a < b {
        let (l, r) = slots.split_at_mut(b);
        (&mut l[a], &r[0])
    } else {
        let (l, r) = slots.split_at_mut(a);
        (&mut r[0], &l[b])
    }
}

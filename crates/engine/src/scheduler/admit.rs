//! Admission: queued requests move into free slots, each into the slot
//! that holds the longest prefix of its prompt (prefix caching; a hybrid
//! slot whose prompt snapshot is the very prompt resumes with the logits
//! kept there), with slots reserved for its other choices (apart from
//! engine_loop.rs, which runs steps).

use super::engine_loop::{pair, Group, State};
use super::slot::{Job, JobKind, Slot};
use super::{same_lora, Submitted, Task, Usage};
use crate::generate::Generator;
use std::sync::atomic::Ordering;

impl State<'_> {
    /// Move queued requests into free slots, first come first served.
    pub(super) fn admit(&mut self) {
        while let Some(sub) = self.queue.front() {
            let need = match &sub.req.task {
                Task::Generate { n, .. } => *n,
                Task::Embed { .. } => 1,
            };
            let free: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].is_free())
                .collect();
            if free.len() < need {
                return;
            }
            let sub = self.queue.pop_front().expect("front exists");
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            self.start(*sub, free);
        }
    }

    /// Start a request in the free slot that holds the longest prefix of its
    /// prompt (or copy that prefix from a busy slot), least recently used
    /// on ties; reserve slots for its other choices.
    fn start(&mut self, sub: Submitted, free: Vec<usize>) {
        let Submitted { req, tx, at } = sub;
        let prompt = req.prompt;
        let lora = req.lora;
        // Leave one prompt token to evaluate: its logits start generation.
        let max_reuse = match req.task {
            Task::Generate { .. } => prompt.len() - 1,
            // An embedding pools every token's hidden state: no reuse.
            Task::Embed { .. } => 0,
        };
        // Rows computed under another adapter set are not this request's.
        let reuse_of = |s: &Slot| {
            if same_lora(&s.lora, &lora) {
                s.reusable(s.common_prefix(&prompt).min(max_reuse))
            } else {
                0
            }
        };
        // A hybrid slot whose prompt snapshot is this very prompt, kept with
        // the logits after it, resumes there with nothing to evaluate (its
        // state cannot go back one token to re-evaluate the last one).
        let whole = |s: &Slot| {
            matches!(req.task, Task::Generate { .. })
                && same_lora(&s.lora, &lora)
                && s.tokens.get(..prompt.len()) == Some(&prompt[..])
                && s.cache.snapshot_logits(prompt.len()).is_some()
        };
        let whole_slot = free.iter().copied().find(|&i| whole(&self.slots[i]));
        let (slot, cached) = match whole_slot {
            Some(i) => (i, prompt.len()),
            None => {
                let &slot = free
                    .iter()
                    .max_by_key(|&&i| {
                        let s = &self.slots[i];
                        (reuse_of(s), std::cmp::Reverse(s.last_used))
                    })
                    .expect("at least one free slot");
                let mut cached = reuse_of(&self.slots[slot]);
                // A busy slot (or another free one) may hold more of the
                // prompt.
                let donor = (0..self.slots.len())
                    .filter(|&i| i != slot)
                    .map(|i| (reuse_of(&self.slots[i]), i))
                    .max();
                if let Some((n, d)) = donor.filter(|&(n, _)| n > cached) {
                    let (a, b) = pair(&mut self.slots, slot, d);
                    a.copy_prefix(b, n);
                    cached = n;
                }
                (slot, cached)
            }
        };
        let tick = self.tick();
        let s = &mut self.slots[slot];
        s.truncate(cached);
        debug_assert_eq!(s.tokens.len(), cached, "reusable() promised this prefix");
        s.last_used = tick;
        s.lora = lora;
        let group = self.next_group;
        self.next_group += 1;
        let n_keep = self.cfg.context_shift.map_or(0, |k| {
            k.resolve(prompt.len(), self.tok.add_bos(), self.cfg.n_ctx_slot)
        });
        let kind = match &req.task {
            Task::Generate { params, .. } => JobKind::Generate {
                gen: Box::new(Generator::new(params.clone()).expect("checked at submit")),
                feed: None,
            },
            Task::Embed { pooling } => JobKind::Embed {
                pooling: *pooling,
                hidden: Vec::new(),
                acc: vec![0.0; self.model.config.n_embd],
                n: 0,
            },
        };
        let logits = match whole_slot {
            Some(_) => s.cache.snapshot_logits(cached).map(<[f32]>::to_vec),
            None => None,
        };
        s.job = Some(Job {
            group,
            index: 0,
            pending: prompt[cached..].to_vec(),
            kind,
            logits: logits.unwrap_or_default(),
            admitted: tick,
            n_keep,
            last_run: tick,
            spec: Default::default(),
        });
        let mut reserved = Vec::new();
        if let Task::Generate { n, .. } = &req.task {
            for &i in free.iter().filter(|&&i| i != slot).take(n - 1) {
                self.slots[i].reserved = true;
                reserved.push(i);
            }
        }
        let n_choices = 1 + reserved.len();
        let draft =
            (self.speculates() && matches!(req.task, Task::Generate { .. })).then(Default::default);
        self.groups.insert(
            group,
            Group {
                tx,
                running: n_choices,
                reserved,
                task: req.task,
                usage: Usage {
                    prompt_tokens: prompt.len(),
                    cached_tokens: cached,
                    draft,
                    ..Usage::default()
                },
                submitted: at,
                first_token: None,
            },
        );
        metrics::counter!("shohin_prompt_tokens_cached_total").increment(cached as u64);
        if whole_slot.is_some() {
            // The prompt is done already: fork the choices and sample now.
            let ready = self.after(slot);
            self.sample(&ready);
        }
    }
}

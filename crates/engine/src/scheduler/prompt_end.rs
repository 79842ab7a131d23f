//! The end of a span's evaluation for jobs other than decoding: pooling an
//! embedding's hidden rows, and at the end of a prompt forking the
//! request's other choices (apart from engine_loop.rs, which runs steps).

use super::engine_loop::{pair, State};
use super::slot::{Job, JobKind};
use super::{Event, Pooling, Task};
use crate::generate::Generator;

impl State<'_> {
    /// After slot `i` evaluated its span: pool (embeddings) or, when the
    /// prompt is done, fork the other choices; returns the slots whose next
    /// token is to be sampled.
    pub(super) fn after(&mut self, i: usize) -> Vec<usize> {
        let d = self.model.config.n_embd;
        let s = &mut self.slots[i];
        let job = s.job.as_mut().expect("a running slot");
        let done = job.pending.is_empty();
        // This step evaluated the last prompt chunk (not a decoded token).
        let prompt_end = done && matches!(job.kind, JobKind::Generate { feed: None, .. });
        let gid = job.group;
        match &mut job.kind {
            JobKind::Embed {
                pooling,
                hidden,
                acc,
                n,
            } => {
                for row in hidden.chunks_exact(d) {
                    match pooling {
                        Pooling::Mean => acc.iter_mut().zip(row).for_each(|(a, r)| *a += r),
                        Pooling::Cls if *n > 0 => {}
                        Pooling::Cls | Pooling::Last => acc.copy_from_slice(row),
                    }
                    *n += 1;
                }
                if done {
                    let mut e = std::mem::take(acc);
                    if *pooling == Pooling::Mean {
                        let k = 1.0 / *n as f32;
                        e.iter_mut().for_each(|v| *v *= k);
                    }
                    l2_normalize(&mut e);
                    s.job = None;
                    if let Some(g) = self.groups.remove(&gid) {
                        let _ = g.tx.send(Event::Embedding(e));
                        let _ = g.tx.send(Event::Done(g.usage));
                    }
                }
                Vec::new()
            }
            JobKind::Generate { .. } => {
                if !done {
                    return Vec::new();
                }
                // A hybrid model's later request (the next chat turn, or
                // the same prompt again, with the logits kept here) can
                // resume its recurrent state at the prompt's end.
                if prompt_end {
                    let s = &mut self.slots[i];
                    let logits = s.job.as_ref().map_or(&[][..], |j| &j.logits[..]);
                    s.cache.save_snapshot_with_logits(logits);
                }
                // The prompt is done: fork the other choices first.
                let reserved = self
                    .groups
                    .get_mut(&gid)
                    .map(|g| std::mem::take(&mut g.reserved))
                    .unwrap_or_default();
                if !reserved.is_empty() {
                    self.fork(i, gid, &reserved);
                }
                std::iter::once(i).chain(reserved).collect()
            }
        }
    }

    /// Copy slot `src`'s sequence and logits into the reserved slots, each
    /// a new choice with its own seed.
    fn fork(&mut self, src: usize, gid: u64, reserved: &[usize]) {
        let Some(Task::Generate { params, .. }) = self.groups.get(&gid).map(|g| g.task.clone())
        else {
            return;
        };
        let admitted = self.slots[src].job.as_ref().map_or(0, |j| j.admitted);
        let last_run = self.slots[src].job.as_ref().map_or(0, |j| j.last_run);
        let n_keep = self.slots[src].job.as_ref().map_or(0, |j| j.n_keep);
        let logits = self.slots[src]
            .job
            .as_ref()
            .map(|j| j.logits.clone())
            .unwrap_or_default();
        let n = self.slots[src].tokens.len();
        for (k, &r) in reserved.iter().enumerate() {
            let (a, b) = pair(&mut self.slots, r, src);
            a.copy_prefix(b, n);
            a.reserved = false;
            let mut p = params.clone();
            p.sampling.seed = p.sampling.seed.wrapping_add(k as u64 + 1);
            a.job = Some(Job {
                group: gid,
                index: k + 1,
                pending: Vec::new(),
                kind: JobKind::Generate {
                    gen: Box::new(Generator::new(p).expect("checked at submit")),
                    feed: None,
                },
                logits: logits.clone(),
                admitted,
                n_keep,
                last_run,
                spec: Default::default(),
            });
        }
    }
}

fn l2_normalize(v: &mut [f32]) {
    let n = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if n > 0.0 {
        let k = (1.0 / n) as f32;
        v.iter_mut().for_each(|x| *x *= k);
    }
}

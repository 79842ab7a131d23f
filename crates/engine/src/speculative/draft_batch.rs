//! Drafting for several sequences at once (`serve -md`: one draft cache per
//! slot): the draft caches' catch-up and every drafting depth run as one
//! batched forward over all the sequences, so the draft model's weights
//! are read once per depth instead of once per slot. Each sequence gets
//! exactly the drafts [`Drafter::draft`](super::Drafter::draft) would give
//! it alone: a token's logits do not depend on what it is batched with
//! (model.rs, `forward_batch`), and the same tokens are evaluated.

use super::draft::{top1, DraftModel};
use crate::error::Result;
use crate::model::Span;

/// One sequence's drafting.
pub struct DraftJob<'a, 'm> {
    pub drafter: &'a mut DraftModel<'m>,
    /// The sequence so far, ending with the token about to be verified.
    pub history: &'a [u32],
    /// Drafts wanted at most.
    pub max: usize,
    /// Where the drafts go (appended).
    pub out: &'a mut Vec<u32>,
}

/// Draft for every job. A draft cache that lags its sequence is caught up
/// first, `budget` tokens at most over all jobs (oldest first: the order of
/// `jobs`); a job whose cache is still behind after that drafts nothing
/// this time. All drafters must share one model.
pub fn draft_many(jobs: &mut [DraftJob<'_, '_>], budget: usize) -> Result<()> {
    let Some(model) = jobs.first().map(|j| j.drafter.model) else {
        return Ok(());
    };
    debug_assert!(jobs.iter().all(|j| std::ptr::eq(j.drafter.model, model)));
    // Catch-up: what each cache lacks, within the shared budget.
    let mut left = budget;
    let mut ready = vec![false; jobs.len()];
    let mut evals: Vec<Option<(usize, usize)>> = vec![None; jobs.len()];
    for (k, j) in jobs.iter_mut().enumerate() {
        match j.drafter.lacks(j.history) {
            None => {}
            Some(None) => ready[k] = true,
            Some(Some(from)) if left > 0 => {
                let to = j.history.len().min(from.saturating_add(left));
                left -= to - from;
                j.drafter.truncate(from);
                evals[k] = Some((from, to));
                ready[k] = to == j.history.len();
            }
            Some(Some(_)) => {}
        }
    }
    if evals.iter().any(Option::is_some) {
        let mut spans: Vec<Span<'_>> = jobs
            .iter_mut()
            .zip(&evals)
            .filter_map(|(j, e)| {
                let (from, to) = (*e)?;
                let h: &[u32] = j.history;
                let d = &mut *j.drafter;
                Some(Span {
                    cache: &mut d.cache,
                    tokens: &h[from..to],
                    logits: Some(&mut d.logits[..]),
                    hidden: None,
                })
            })
            .collect();
        model.forward_batch(&mut spans)?;
        drop(spans);
        for (j, e) in jobs.iter_mut().zip(&evals) {
            if let Some((from, to)) = *e {
                j.drafter.tokens.extend_from_slice(&j.history[from..to]);
            }
        }
    }
    // Drafting, one depth per batched step. A job stops at a token below
    // its draft's p_min or at its limit (whose last draft is not
    // evaluated: nothing reads the logits after it).
    let mut max: Vec<usize> = jobs
        .iter()
        .zip(&ready)
        .map(|(j, &r)| {
            let room = j.drafter.cache.n_ctx() + 1 - j.history.len();
            if r {
                j.max.min(room)
            } else {
                0
            }
        })
        .collect();
    let mut next: Vec<Option<u32>> = vec![None; jobs.len()];
    loop {
        for ((j, m), n) in jobs.iter_mut().zip(&mut max).zip(&mut next) {
            *n = None;
            if *m == 0 {
                continue;
            }
            let (id, p) = top1(&j.drafter.logits);
            if p < j.drafter.p_min {
                *m = 0;
                continue;
            }
            j.out.push(id);
            *m -= 1;
            if *m > 0 {
                *n = Some(id);
            }
        }
        if next.iter().all(Option::is_none) {
            return Ok(());
        }
        let mut spans: Vec<Span<'_>> = jobs
            .iter_mut()
            .zip(&next)
            .filter_map(|(j, n)| {
                let id = n.as_ref()?;
                let d = &mut *j.drafter;
                Some(Span {
                    cache: &mut d.cache,
                    tokens: std::slice::from_ref(id),
                    logits: Some(&mut d.logits[..]),
                    hidden: None,
                })
            })
            .collect();
        model.forward_batch(&mut spans)?;
        drop(spans);
        for (j, n) in jobs.iter_mut().zip(&next) {
            if let Some(id) = *n {
                j.drafter.tokens.push(id);
            }
        }
    }
}

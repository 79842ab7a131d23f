//! The decisions after a verified span, shared by `run`/`chat`
//! ([`super::Speculator::commit`]) and the server's slots
//! (`scheduler/speculate.rs`): one loop, so both keep the same tokens.

use crate::generate::Next;

/// Decides the tokens after the target evaluated `[id, draft...]`:
/// `next(j)` is the decision from the logits after `j` drafts, made as
/// plain decoding makes it. Decisions go on while each equals its draft
/// and does not finish (a finished token is never evaluated, as in plain
/// decoding); the first that differs (or the one after the last draft)
/// ends them. Returns the decisions (the tokens of the batch that stay:
/// `id` and one per kept draft, so the span keeps `decisions.len()`
/// tokens) and how many decisions equalled their draft (a finishing one
/// included).
pub(crate) fn decide<E>(
    draft: &[u32],
    mut next: impl FnMut(usize) -> Result<Next, E>,
) -> (Vec<Result<Next, E>>, usize) {
    let mut decided = Vec::with_capacity(draft.len() + 1);
    let mut accepted = 0;
    for j in 0..=draft.len() {
        let r = next(j);
        let matched = matches!(&r, Ok(n) if draft.get(j) == Some(&n.id));
        accepted += usize::from(matched);
        let go_on = matched && matches!(&r, Ok(n) if n.finish.is_none());
        decided.push(r);
        if !go_on {
            break;
        }
    }
    (decided, accepted)
}

/// The next round's draft cap: doubled after a round that kept every
/// draft, else one more than this round kept, never above `n_max` (the
/// "heuristic" schedule of Hugging Face's assisted generation; see
/// `Speculator::cap`).
pub(crate) fn next_cap(cap: usize, drafted: usize, accepted: usize, n_max: usize) -> usize {
    if accepted == drafted {
        cap.saturating_mul(2).min(n_max)
    } else {
        (accepted + 1).min(n_max)
    }
}

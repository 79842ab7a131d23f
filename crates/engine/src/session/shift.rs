//! A session's context shift: when the context is full, drop half of what
//! follows the kept start (`--keep`) and go on (crate::context_shift).

use super::Session;
use crate::context_shift::{n_discard, Keep};
use crate::error::{EngineError, Result};
use std::time::Instant;

#[derive(Debug)]
pub(super) struct ShiftState {
    keep: Keep,
    add_bos: bool,
    /// `n_keep`, fixed by the first prompt (llama-cli resolves it once from
    /// the initial prompt).
    n_keep: Option<usize>,
    /// The tokens dropped so far, in order: they sat at `n_keep..`, so the
    /// conversation as evaluated is `tokens[..n_keep] + discarded +
    /// tokens[n_keep..]`.
    discarded: Vec<u32>,
    n_shifts: usize,
}

impl Session<'_> {
    /// Turn context shift on (`Some(keep)`) or off. `add_bos`: whether the
    /// tokenizer adds BOS (kept on top of `--keep N`, as llama-cli does).
    /// An error for a model whose state cannot drop tokens (hybrid qwen35).
    pub fn set_context_shift(&mut self, keep: Option<Keep>, add_bos: bool) -> Result<()> {
        self.shift = match keep {
            None => None,
            Some(keep) => {
                self.model.check_context_shift()?;
                Some(ShiftState {
                    keep,
                    add_bos,
                    n_keep: None,
                    discarded: Vec::new(),
                    n_shifts: 0,
                })
            }
        };
        Ok(())
    }

    pub fn context_shift(&self) -> bool {
        self.shift.is_some()
    }

    /// The positions a shift keeps at the start (0 before the first prompt
    /// or without context shift).
    pub fn n_keep(&self) -> usize {
        self.shift.as_ref().and_then(|s| s.n_keep).unwrap_or(0)
    }

    /// Shifts done so far.
    pub fn n_shifts(&self) -> usize {
        self.shift.as_ref().map_or(0, |s| s.n_shifts)
    }

    /// Tokens dropped by shifts so far.
    pub fn n_discarded(&self) -> usize {
        self.shift.as_ref().map_or(0, |s| s.discarded.len())
    }

    /// The sequence as it was evaluated, dropped tokens included (what
    /// [`Session::tokens`] would be had nothing shifted).
    pub fn history(&self) -> Vec<u32> {
        let (k, dropped) = match &self.shift {
            Some(s) => (
                s.n_keep.unwrap_or(0).min(self.tokens.len()),
                &s.discarded[..],
            ),
            None => (0, &[][..]),
        };
        let mut h = self.tokens[..k].to_vec();
        h.extend_from_slice(dropped);
        h.extend_from_slice(&self.tokens[k..]);
        h
    }

    /// Whether one more token fits; with context shift on, a context with
    /// one position left is shifted first: llama-cli shifts when `n_past +
    /// 1 >= n_ctx` (tools/completion/completion.cpp), and shifting at the
    /// same step keeps greedy runs comparable with it token for token.
    /// Call before sampling a token to evaluate.
    pub fn make_room(&mut self) -> Result<bool> {
        if self.tokens.len() + 1 >= self.n_ctx() && self.shift.is_some() {
            self.shift()?;
        }
        Ok(self.tokens.len() < self.n_ctx())
    }

    /// Shift now: drop `n_discard(len, n_keep)` positions after the kept
    /// ones. Returns how many went (0: context shift is off, or nothing
    /// can go).
    pub fn shift(&mut self) -> Result<usize> {
        let len = self.tokens.len();
        let Some(st) = &mut self.shift else {
            return Ok(0);
        };
        let k = st.n_keep.unwrap_or(0).min(len);
        let d = n_discard(len, k);
        if d == 0 {
            return Ok(0);
        }
        self.model.shift_cache(&mut self.cache, k, d)?;
        st.discarded.extend(self.tokens.drain(k..k + d));
        st.n_shifts += 1;
        Ok(d)
    }

    /// Fix `n_keep` from the first prompt of the sequence.
    pub(super) fn resolve_keep(&mut self, n_prompt: usize) {
        let n_ctx = self.n_ctx();
        if let Some(st) = &mut self.shift {
            if st.n_keep.is_none() {
                st.n_keep = Some(st.keep.resolve(n_prompt, st.add_bos, n_ctx));
            }
        }
    }

    /// [`Session::prompt`] of a later prompt with context shift on: shift
    /// as often as it takes for `ids` to fit, evaluating what fits first
    /// when the kept start leaves too little room for all of it.
    pub(super) fn prompt_shifting(&mut self, ids: &[u32]) -> Result<&[f32]> {
        if ids.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let t = Instant::now();
        let n_ctx = self.n_ctx();
        let mut rest = ids;
        loop {
            if self.tokens.len() + rest.len() <= n_ctx {
                self.eval(rest)?;
                break;
            }
            if self.shift()? > 0 {
                continue;
            }
            let room = n_ctx - self.tokens.len();
            if room == 0 {
                return Err(EngineError::PromptTooLong {
                    n_prompt: self.tokens.len() + rest.len(),
                    n_ctx,
                });
            }
            self.eval(&rest[..room])?;
            rest = &rest[room..];
        }
        self.cache.save_snapshot();
        self.timings.n_prompt += ids.len();
        self.timings.prompt += t.elapsed();
        Ok(&self.logits)
    }

    /// After a truncation to `n` tokens: the dropped tokens are history
    /// only while the kept start is whole.
    pub(super) fn forget_shifts_after(&mut self, n: usize) {
        if let Some(st) = &mut self.shift {
            if n <= st.n_keep.unwrap_or(0) {
                st.discarded.clear();
            }
            if n == 0 {
                st.n_keep = None;
            }
        }
    }
}

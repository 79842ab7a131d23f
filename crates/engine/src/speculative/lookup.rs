//! Prompt lookup: draft by continuing an earlier occurrence of the
//! sequence's last n tokens (llama.cpp's tools/lookup drafts from n-gram
//! statistics of the context, common/ngram-cache.cpp; this is the simpler
//! "prompt lookup decoding": the most recent earlier match, longest n-gram
//! first). Free to compute and very good when the output copies from the
//! prompt (code edits, quotes, extraction).

use super::Drafter;
use crate::error::Result;

/// llama.cpp's `LLAMA_NGRAM_MAX` (common/ngram-cache.h): the longest
/// n-gram its lookup matches.
pub const DEFAULT_LOOKUP_NGRAM: usize = 4;

/// Shorter matches than this are not used: a single repeated token says
/// little about what follows it, and a rejected draft costs a batch.
const MIN_NGRAM: usize = 2;

/// The prompt-lookup drafter.
#[derive(Clone, Copy, Debug)]
pub struct Lookup {
    ngram: usize,
}

impl Lookup {
    /// Match the last `ngram` tokens, down to 2 (`ngram` at least 1; a
    /// value of 1 matches single tokens).
    pub fn new(ngram: usize) -> Self {
        Self {
            ngram: ngram.max(1),
        }
    }
}

impl Default for Lookup {
    fn default() -> Self {
        Self::new(DEFAULT_LOOKUP_NGRAM)
    }
}

impl Drafter for Lookup {
    fn draft(&mut self, history: &[u32], max: usize, out: &mut Vec<u32>) -> Result<()> {
        lookup(history, self.ngram, MIN_NGRAM.min(self.ngram), max, out);
        Ok(())
    }
}

/// Append to `out` up to `max` tokens that followed the most recent earlier
/// occurrence of the last `n` tokens of `history`, for `n` from `n_max`
/// down to `n_min`. A match near the end continues into the draft itself
/// (a repeating run repeats on).
pub fn lookup(history: &[u32], n_max: usize, n_min: usize, max: usize, out: &mut Vec<u32>) {
    let len = history.len();
    for n in (n_min.max(1)..=n_max).rev() {
        if len <= n {
            continue;
        }
        let pat = &history[len - n..];
        // Start positions before the suffix itself, latest first.
        let Some(i) = (0..len - n).rev().find(|&i| &history[i..i + n] == pat) else {
            continue;
        };
        let from = i + n;
        let start = out.len();
        for j in 0..max {
            // The sequence as drafted so far: history, then the draft.
            let at = from + j;
            let t = if at < len {
                history[at]
            } else {
                out[start + at - len]
            };
            out.push(t);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::lookup;

    fn run(h: &[u32], n_max: usize, max: usize) -> Vec<u32> {
        let mut out = Vec::new();
        lookup(h, n_max, 1, max, &mut out);
        out
    }

    #[test]
    fn continues_the_latest_match_of_the_longest_ngram() {
        // "1 2 3" occurs at 0 and 5; the latest continues with 9.
        let h = [1, 2, 3, 4, 5, 1, 2, 3, 9, 1, 2, 3];
        assert_eq!(run(&h, 3, 3), vec![9, 1, 2]);
        // The 3-gram "7 2 3" never occurred before: "2 3" did (at 6).
        let h = [1, 2, 3, 4, 7, 2, 3];
        assert_eq!(run(&h, 3, 2), vec![4, 7]);
    }

    #[test]
    fn a_run_repeats_into_the_draft() {
        assert_eq!(run(&[5, 1, 2, 1, 2], 2, 5), vec![1, 2, 1, 2, 1]);
    }

    #[test]
    fn no_match_no_draft() {
        assert!(run(&[1, 2, 3, 4], 2, 4).is_empty());
        assert!(run(&[], 2, 4).is_empty());
    }
}

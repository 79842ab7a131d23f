//! SentencePiece (`tokenizer.ggml.model = "llama"`) merging of one text
//! fragment, after llama-vocab.cpp `llm_tokenizer_spm_session`.
//!
//! The fragment (spaces already escaped as U+2581) starts as one symbol per
//! UTF-8 character. Every adjacent pair whose concatenation is a token is
//! queued by that token's score; the best pair (highest score, then leftmost)
//! is merged unless it went stale, and the new neighbours are queued. Each
//! final symbol is emitted as its token, or, when it is not a token (only a
//! single character can be: every merge result is a token), as one byte
//! token `<0xXX>` per UTF-8 byte (byte fallback).
//!
//! llama.cpp's `resegment` also consults a reverse-merge map for symbols that
//! are not tokens; since such a symbol is always a single character and the
//! map only holds texts of two or more characters, that lookup never
//! succeeds, and it is not reproduced here.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::bpe::NO_TOKEN;
use crate::Tokenizer;

/// SentencePiece's visible space (llama-vocab.cpp `llama_escape_whitespace`).
pub(crate) const ESCAPED_SPACE: char = '\u{2581}';

/// `' '` → U+2581 (llama-vocab.cpp `llama_escape_whitespace`), appended to `out`.
pub(crate) fn escape_whitespace(text: &str, out: &mut String) {
    for c in text.chars() {
        out.push(if c == ' ' { ESCAPED_SPACE } else { c });
    }
}

/// U+2581 → `' '` (llama-vocab.cpp `llama_unescape_whitespace`).
pub(crate) fn unescape_whitespace(text: &str) -> String {
    text.replace(ESCAPED_SPACE, " ")
}

const NIL: usize = usize::MAX;

/// A symbol: a byte range of the fragment; `len == 0` once merged into its
/// left neighbour.
#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: usize,
    next: usize,
}

/// A queued adjacent pair (llama.cpp `llm_bigram_spm`).
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the pair when queued; a mismatch later means stale.
    size: usize,
}

/// Max-heap order of llama.cpp's comparator: higher score first, then the
/// leftmost pair. Scores are finite and -0.0 was normalised at load, so
/// `total_cmp` agrees with C++'s `<` on them.
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}

/// Reusable buffers for [`Tokenizer::spm_fragment`].
#[derive(Default)]
pub(crate) struct SpmScratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Bigram>,
}

impl Tokenizer {
    /// Tokenize one escaped text fragment, appending ids to `out`.
    pub(crate) fn spm_fragment(&self, text: &str, sc: &mut SpmScratch, out: &mut Vec<u32>) {
        sc.syms.clear();
        sc.heap.clear();
        let n_chars = text.chars().count();
        for (i, (start, c)) in text.char_indices().enumerate() {
            sc.syms.push(Sym {
                start,
                len: c.len_utf8(),
                prev: if i == 0 { NIL } else { i - 1 },
                next: if i + 1 == n_chars { NIL } else { i + 1 },
            });
        }
        for i in 1..sc.syms.len() {
            self.spm_try_pair(text, sc, i - 1, i);
        }
        while let Some(b) = sc.heap.pop() {
            let (l, r) = (sc.syms[b.left], sc.syms[b.right]);
            if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
                continue; // one side was merged since this pair was queued
            }
            sc.syms[b.left].len += r.len;
            sc.syms[b.right].len = 0;
            sc.syms[b.left].next = r.next;
            if r.next != NIL {
                sc.syms[r.next].prev = b.left;
            }
            self.spm_try_pair(text, sc, l.prev, b.left);
            self.spm_try_pair(text, sc, b.left, r.next);
        }
        let mut i = if sc.syms.is_empty() { NIL } else { 0 };
        while i != NIL {
            let s = sc.syms[i];
            let piece = &text[s.start..s.start + s.len];
            match self.text_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    // byte fallback; llama.cpp throws when a byte has no
                    // token at all, here the unknown token stands in (or
                    // the byte is dropped when there is none either)
                    for &byte in piece.as_bytes() {
                        match self.byte_token[byte as usize] {
                            NO_TOKEN => out.extend(self.unk),
                            id => out.push(id),
                        }
                    }
                }
            }
            i = s.next;
        }
    }

    /// llama.cpp `try_add_bigram`: queue (left, right) if their text is a token.
    fn spm_try_pair(&self, text: &str, sc: &mut SpmScratch, left: usize, right: usize) {
        if left == NIL || right == NIL {
            return;
        }
        let (l, r) = (sc.syms[left], sc.syms[right]);
        let size = l.len + r.len;
        if let Some(&id) = self.text_to_id.get(&text[l.start..l.start + size]) {
            sc.heap.push(Bigram {
                score: self.scores[id as usize],
                left,
                right,
                size,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_escaping_round_trips() {
        let mut s = String::new();
        escape_whitespace(" a  b\t", &mut s);
        assert_eq!(s, "\u{2581}a\u{2581}\u{2581}b\t");
        assert_eq!(unescape_whitespace(&s), " a  b\t");
    }
}

//! Text → token ids (llama-vocab.cpp `llama_vocab::impl::tokenize`, BPE case).

use std::ops::Range;

use crate::bpe::{merge_word, BpeScratch};
use crate::vocab::attr;
use crate::Tokenizer;

/// A piece of the input after special-token partitioning.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fragment {
    /// Byte range of the input still to be pre-tokenized and merged.
    Text(Range<usize>),
    /// A special token matched verbatim.
    Token(u32),
}

impl Tokenizer {
    /// Tokenize `text` like llama.cpp `llama_tokenize(vocab, text, .., add_special, parse_special)`.
    ///
    /// * `add_special`: prepend BOS / append EOS when the vocabulary asks for
    ///   it (`add_bos` / `add_eos`; both false for Qwen2).
    /// * `parse_special`: recognise CONTROL tokens such as `<|im_start|>` in
    ///   the text. USER_DEFINED tokens (e.g. `<tool_call>`) are recognised
    ///   either way, as in llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut words = Vec::new();
        let mut initial = Vec::new();
        let mut scratch = BpeScratch::default();
        for frag in self.partition(text, parse_special) {
            match frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(range) => {
                    let frag_text = &text[range];
                    words.clear();
                    self.pre.split(frag_text, &mut words);
                    for w in &words {
                        initial.clear();
                        initial.extend(
                            frag_text.as_bytes()[w.clone()]
                                .iter()
                                .map(|&b| self.byte_token[b as usize]),
                        );
                        merge_word(&self.merges, &initial, &mut scratch, &mut out);
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// llama-vocab.cpp `tokenizer_st_partition`: for each special token, longest
    /// text first, split every remaining text fragment at each of its
    /// occurrences (left to right, non-overlapping). CONTROL and UNKNOWN tokens
    /// take part only when `parse_special`.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0..text.len()));
        let mut next = Vec::new();
        for &id in &self.special_sorted {
            let a = self.attrs[id as usize];
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = self.texts[id as usize].as_str();
            // cheap pre-check: skip tokens that occur nowhere in the text
            if !frags
                .iter()
                .any(|f| matches!(f, Fragment::Text(r) if text[r.clone()].contains(needle)))
            {
                continue;
            }
            next.clear();
            for f in frags.drain(..) {
                let Fragment::Text(r) = f else {
                    next.push(f);
                    continue;
                };
                let mut start = r.start;
                while let Some(p) = text[start..r.end].find(needle) {
                    let m = start + p;
                    if m > start {
                        next.push(Fragment::Text(start..m));
                    }
                    next.push(Fragment::Token(id));
                    start = m + needle.len();
                }
                if start < r.end {
                    next.push(Fragment::Text(start..r.end));
                }
            }
            std::mem::swap(&mut frags, &mut next);
        }
        frags
    }
}

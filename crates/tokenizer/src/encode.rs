//! Text → token ids (llama-vocab.cpp `llama_vocab::impl::tokenize`, BPE and SPM cases).

use std::ops::Range;

use crate::bpe::{merge_word, BpeScratch};
use crate::byte_level::BYTE_TO_CHAR;
use crate::spm::{escape_whitespace, SpmScratch, ESCAPED_SPACE};
use crate::vocab::attr;
use crate::{PreTokenizer, Tokenizer};

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
    ///   it (`add_bos` / `add_eos`; both false for Qwen2, BOS for Llama).
    /// * `parse_special`: recognise CONTROL tokens such as `<|im_start|>` in
    ///   the text. USER_DEFINED tokens (e.g. `<tool_call>`) are recognised
    ///   either way, as in llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let frags = self.partition(text, parse_special);
        match self.pre {
            Some(pre) => self.encode_bpe(pre, text, &frags, &mut out),
            None => self.encode_spm(text, &frags, &mut out),
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// BPE: pre-tokenize each text fragment into words and merge each word.
    fn encode_bpe(&self, pre: PreTokenizer, text: &str, frags: &[Fragment], out: &mut Vec<u32>) {
        let mut words = Vec::new();
        let mut initial = Vec::new();
        let mut spelled = String::new();
        let mut scratch = BpeScratch::default();
        for frag in frags {
            let range = match frag {
                Fragment::Token(id) => {
                    out.push(*id);
                    continue;
                }
                Fragment::Text(range) => range.clone(),
            };
            let frag_text = &text[range];
            words.clear();
            pre.split(frag_text, &mut words);
            for w in &words {
                let bytes = &frag_text.as_bytes()[w.clone()];
                // llama.cpp `ignore_merges`: a word that is a token as a
                // whole (in byte-level spelling) is taken as is
                if self.ignore_merges {
                    spelled.clear();
                    spelled.extend(bytes.iter().map(|&b| BYTE_TO_CHAR[b as usize]));
                    if let Some(&id) = self.text_to_id.get(spelled.as_str()) {
                        out.push(id);
                        continue;
                    }
                }
                initial.clear();
                initial.extend(bytes.iter().map(|&b| self.byte_token[b as usize]));
                merge_word(&self.merges, &initial, &mut scratch, out);
            }
        }
    }

    /// SentencePiece (llama-vocab.cpp `tokenize`, `LLAMA_VOCAB_TYPE_SPM`):
    /// each text fragment gets a leading space when `add_space_prefix` and it
    /// starts the input or follows a special token, has its spaces escaped
    /// as U+2581, and is merged by score.
    fn encode_spm(&self, text: &str, frags: &[Fragment], out: &mut Vec<u32>) {
        let mut scratch = SpmScratch::default();
        let mut escaped = String::new();
        let mut is_prev_special = true;
        for frag in frags {
            match frag {
                Fragment::Token(id) => {
                    out.push(*id);
                    is_prev_special = true;
                }
                Fragment::Text(range) => {
                    escaped.clear();
                    if self.add_space_prefix && is_prev_special {
                        escaped.push(ESCAPED_SPACE);
                    }
                    escape_whitespace(&text[range.clone()], &mut escaped);
                    self.spm_fragment(&escaped, &mut scratch, out);
                    is_prev_special = false;
                }
            }
        }
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

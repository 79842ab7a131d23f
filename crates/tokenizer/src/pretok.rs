//! Pre-tokenizers: split raw text into words before byte-level BPE.
//!
//! These are hand-written scanners that follow llama.cpp src/unicode.cpp
//! `unicode_regex_split_custom_qwen2`, `unicode_regex_split_custom_llama3`
//! and `unicode_regex_split_custom_gpt2` step by step (llama.cpp uses them instead of a regex engine for these
//! patterns), including their small deviations from the regexes, so the word
//! boundaries are the same as llama.cpp's.

use std::ops::Range;

use crate::unicode::{flags, Flags};

/// Which pre-tokenizer regex a vocabulary uses (`tokenizer.ggml.pre`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// llama-vocab.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Qwen2,
    /// llama-vocab.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3` (Llama 3.x, Falcon 3, ...):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// -- Qwen2's regex with digits in runs of up to three (unicode.cpp's two
    /// custom splitters differ only there).
    Llama3,
    /// llama-vocab.cpp `LLAMA_VOCAB_PRE_TYPE_GPT2`:
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// llama-vocab.cpp `LLAMA_VOCAB_PRE_TYPE_SMOLLM` (SmolLM, StarCoder,
    /// Refact, Command-R, ...): two regexes in turn, `\p{N}` (every digit a
    /// word of its own) and then GPT-2's on each piece between digits
    /// (unicode.cpp `unicode_regex_split` runs each regex over the pieces
    /// of the one before, so GPT-2's `\s+(?!\S)` sees a piece's end as the
    /// end of the text).
    Smollm,
}

impl PreTokenizer {
    /// Map a `tokenizer.ggml.pre` name the way llama-vocab.cpp `load` does,
    /// for the names whose regex this crate implements.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            // llama-vocab.cpp: these all select LLAMA_VOCAB_PRE_TYPE_QWEN2
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => Some(Self::Qwen2),
            // llama-vocab.cpp: these all select LLAMA_VOCAB_PRE_TYPE_LLAMA3
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => Some(Self::Llama3),
            // llama-vocab.cpp: these select LLAMA_VOCAB_PRE_TYPE_GPT2
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" => Some(Self::Gpt2),
            // llama-vocab.cpp: LLAMA_VOCAB_PRE_TYPE_SMOLLM, clean_spaces off
            // (StarCoder and the others sharing its regexes differ in their
            // flags and are untested, so not mapped).
            "smollm" => Some(Self::Smollm),
            _ => None,
        }
    }

    /// Whether llama.cpp's detokenizer applies `clean_spaces` for this
    /// pre-tokenizer (llama-vocab.cpp sets it false for qwen2, leaves the BPE
    /// default `true` for gpt-2 and llama3).
    pub(crate) fn clean_spaces(self) -> bool {
        matches!(self, Self::Gpt2 | Self::Llama3)
    }

    /// llama-vocab.cpp sets `ignore_merges` for LLAMA3: a word that is itself
    /// a token is emitted whole instead of being merged byte by byte (the
    /// merge order could otherwise reach a different segmentation).
    pub(crate) fn ignore_merges(self) -> bool {
        matches!(self, Self::Llama3)
    }

    /// `add_bos` when `tokenizer.ggml.add_bos_token` is absent: llama-vocab.cpp
    /// sets it for LLAMA3, the BPE default is false.
    pub(crate) fn default_add_bos(self) -> bool {
        matches!(self, Self::Llama3)
    }

    /// Split `text` into words; appends their byte ranges (covering all of
    /// `text`, in order) to `out`.
    pub(crate) fn split(self, text: &str, out: &mut Vec<Range<usize>>) {
        match self {
            Self::Qwen2 => Scanner::new(text, out).qwen2(1),
            Self::Llama3 => Scanner::new(text, out).qwen2(3),
            Self::Gpt2 => Scanner::new(text, out).gpt2(),
            Self::Smollm => split_digits_then_gpt2(text, out),
        }
    }
}

/// SMOLLM's two regexes: each numeric code point alone, GPT-2's scanner on
/// the pieces between them.
fn split_digits_then_gpt2(text: &str, out: &mut Vec<Range<usize>>) {
    let mut piece = Vec::new();
    let mut gpt2 = |from: usize, to: usize, out: &mut Vec<Range<usize>>| {
        if from < to {
            piece.clear();
            Scanner::new(&text[from..to], &mut piece).gpt2();
            out.extend(piece.iter().map(|r| r.start + from..r.end + from));
        }
    };
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if flags(c).is_number() {
            gpt2(start, i, out);
            out.push(i..i + c.len_utf8());
            start = i + c.len_utf8();
        }
    }
    gpt2(start, text.len(), out);
}

/// Sentinel code point for positions outside the text (llama.cpp `OUT_OF_RANGE`).
const OUT: u32 = u32::MAX;
const CR: u32 = '\r' as u32;
const LF: u32 = '\n' as u32;
const SPACE: u32 = ' ' as u32;

struct Scanner<'a> {
    cpts: Vec<u32>,
    fl: Vec<Flags>,
    /// Byte offset of each code point, plus the text length at the end.
    byte_at: Vec<usize>,
    prev_end: usize,
    out: &'a mut Vec<Range<usize>>,
}

impl<'a> Scanner<'a> {
    fn new(text: &str, out: &'a mut Vec<Range<usize>>) -> Self {
        let n = text.len();
        let mut cpts = Vec::with_capacity(n);
        let mut fl = Vec::with_capacity(n);
        let mut byte_at = Vec::with_capacity(n + 1);
        for (i, c) in text.char_indices() {
            cpts.push(c as u32);
            fl.push(flags(c));
            byte_at.push(i);
        }
        byte_at.push(n);
        Scanner {
            cpts,
            fl,
            byte_at,
            prev_end: 0,
            out,
        }
    }

    fn len(&self) -> usize {
        self.cpts.len()
    }

    fn cpt(&self, pos: usize) -> u32 {
        self.cpts.get(pos).copied().unwrap_or(OUT)
    }

    fn flags(&self, pos: usize) -> Flags {
        self.fl.get(pos).copied().unwrap_or(Flags::NONE)
    }

    /// llama.cpp `_add_token`: emit the word ending at code point `end`;
    /// returns its length in code points.
    fn add(&mut self, end: usize) -> usize {
        debug_assert!(self.prev_end <= end && end <= self.len());
        let len = end - self.prev_end;
        if len > 0 {
            self.out
                .push(self.byte_at[self.prev_end]..self.byte_at[end]);
        }
        self.prev_end = end;
        len
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (ASCII case-insensitive when `fold`;
    /// llama.cpp's `unicode_tolower` maps no non-ASCII code point onto these
    /// letters, so ASCII folding is exact). Returns the match length.
    fn contraction(&self, pos: usize, fold: bool) -> Option<usize> {
        let n = self.len();
        if self.cpt(pos) != '\'' as u32 || pos + 1 >= n {
            return None;
        }
        let low = |c: u32| {
            if fold && (b'A' as u32..=b'Z' as u32).contains(&c) {
                c + 32
            } else {
                c
            }
        };
        let c1 = low(self.cpt(pos + 1));
        if [b's', b't', b'm', b'd'].iter().any(|&b| c1 == b as u32) {
            return Some(2);
        }
        if pos + 2 < n {
            let c2 = low(self.cpt(pos + 2));
            let pair = |a: u8, b: u8| c1 == a as u32 && c2 == b as u32;
            if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                return Some(3);
            }
        }
        None
    }

    /// Trailing whitespace handling shared by both scanners: `\s+(?!\S)|\s+`.
    /// Returns true if it consumed something.
    fn whitespace_tail(&mut self, pos: &mut usize, num_ws: usize) -> bool {
        // regex: \s+(?!\S) -- leave the last space for the next word
        if num_ws > 1 && self.cpt(*pos + num_ws) != OUT {
            *pos += num_ws - 1;
            self.add(*pos);
            return true;
        }
        // regex: \s+
        if num_ws > 0 {
            *pos += num_ws;
            self.add(*pos);
            return true;
        }
        false
    }

    /// llama.cpp `unicode_regex_split_custom_qwen2` (`max_digits` = 1) and
    /// `unicode_regex_split_custom_llama3` (`max_digits` = 3, `\p{N}{1,3}`).
    fn qwen2(&mut self, max_digits: usize) {
        let n = self.len();
        let mut pos = 0;
        while pos < n {
            let cpt = self.cpt(pos);
            let fl = self.flags(pos);

            // regex: (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if let Some(len) = self.contraction(pos, true) {
                pos += self.add(pos + len);
                continue;
            }

            // regex: [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cpt == CR || cpt == LF || fl.is_number())
                && (fl.is_letter() || self.flags(pos + 1).is_letter())
            {
                pos += 1;
                while self.flags(pos).is_letter() {
                    pos += 1;
                }
                self.add(pos);
                continue;
            }

            // regex: \p{N} (qwen2) or \p{N}{1,3} (llama3): a run of digits
            // is cut into pieces of `max_digits`, left to right
            if fl.is_number() {
                let mut ini = pos;
                while self.flags(pos).is_number() {
                    pos += 1;
                    if pos - ini >= max_digits {
                        self.add(pos);
                        ini = pos;
                    }
                }
                self.add(pos);
                continue;
            }

            // regex: <space>?[^\s\p{L}\p{N}]+[\r\n]*
            // (llama.cpp tests the *current* code point's flags for "is some")
            let mut fl2 = if cpt == SPACE {
                self.flags(pos + 1)
            } else {
                fl
            };
            if !(fl2.is_whitespace() || fl2.is_letter() || fl2.is_number()) && fl.is_some() {
                pos += usize::from(cpt == SPACE);
                while !(fl2.is_whitespace() || fl2.is_letter() || fl2.is_number()) && fl2.is_some()
                {
                    pos += 1;
                    fl2 = self.flags(pos);
                }
                while matches!(self.cpt(pos), CR | LF) {
                    pos += 1;
                }
                self.add(pos);
                continue;
            }

            let mut num_ws = 0;
            let mut last_end_r_or_n = 0;
            while self.flags(pos + num_ws).is_whitespace() {
                if matches!(self.cpt(pos + num_ws), CR | LF) {
                    last_end_r_or_n = pos + num_ws + 1;
                }
                num_ws += 1;
            }

            // regex: \s*[\r\n]+
            if last_end_r_or_n > 0 {
                pos = last_end_r_or_n;
                self.add(pos);
                continue;
            }

            if self.whitespace_tail(&mut pos, num_ws) {
                continue;
            }

            // no match
            pos += 1;
            self.add(pos);
        }
    }

    /// llama.cpp `unicode_regex_split_custom_gpt2`.
    fn gpt2(&mut self) {
        let n = self.len();
        let mut pos = 0;
        while pos < n {
            let cpt = self.cpt(pos);
            let fl = self.flags(pos);

            // regex: 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
            if let Some(len) = self.contraction(pos, false) {
                pos += self.add(pos + len);
                continue;
            }

            let mut fl2 = if cpt == SPACE {
                self.flags(pos + 1)
            } else {
                fl
            };
            // regex: <space>?\p{L}+
            if fl2.is_letter() {
                pos += usize::from(cpt == SPACE);
                while fl2.is_letter() {
                    pos += 1;
                    fl2 = self.flags(pos);
                }
                self.add(pos);
                continue;
            }
            // regex: <space>?\p{N}+
            if fl2.is_number() {
                pos += usize::from(cpt == SPACE);
                while fl2.is_number() {
                    pos += 1;
                    fl2 = self.flags(pos);
                }
                self.add(pos);
                continue;
            }
            // regex: <space>?[^\s\p{L}\p{N}]+
            if !(fl2.is_whitespace() || fl2.is_letter() || fl2.is_number()) && fl2.is_some() {
                pos += usize::from(cpt == SPACE);
                while !(fl2.is_whitespace() || fl2.is_letter() || fl2.is_number()) && fl2.is_some()
                {
                    pos += 1;
                    fl2 = self.flags(pos);
                }
                self.add(pos);
                continue;
            }

            let mut num_ws = 0;
            while self.flags(pos + num_ws).is_whitespace() {
                num_ws += 1;
            }
            if self.whitespace_tail(&mut pos, num_ws) {
                continue;
            }

            // no match
            pos += 1;
            self.add(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<&str> {
        let mut r = Vec::new();
        pre.split(text, &mut r);
        r.into_iter().map(|x| &text[x]).collect()
    }

    #[test]
    fn qwen2_splits_like_the_regex() {
        let q = PreTokenizer::Qwen2;
        assert_eq!(words(q, "Hello world"), ["Hello", " world"]);
        assert_eq!(
            words(q, "I'M here, y'all!"),
            ["I", "'M", " here", ",", " y", "'all", "!"]
        );
        assert_eq!(words(q, "1234 abc"), ["1", "2", "3", "4", " abc"]);
        assert_eq!(words(q, "a   b"), ["a", "  ", " b"]);
        assert_eq!(words(q, "a  \n\n b"), ["a", "  \n\n", " b"]);
        assert_eq!(words(q, "x   "), ["x", "   "]);
        assert_eq!(words(q, " (x)\n\n"), [" (", "x", ")\n\n"]);
        assert_eq!(words(q, "\tword"), ["\tword"]);
        assert_eq!(words(q, "大赛𬴊ok"), ["大赛𬴊ok"]);
        assert_eq!(words(q, ""), Vec::<&str>::new());
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        let l = PreTokenizer::Llama3;
        assert_eq!(words(l, "1234567 abc"), ["123", "456", "7", " abc"]);
        assert_eq!(words(l, "333"), ["333"]);
        assert_eq!(words(l, "x12"), ["x", "12"]);
        assert_eq!(words(l, "I'M here"), ["I", "'M", " here"]);
        assert_eq!(words(l, "a  \n\n b"), ["a", "  \n\n", " b"]);
        assert_eq!(words(l, "½²3"), ["½²3"]);
    }

    #[test]
    fn gpt2_splits_like_the_regex() {
        let g = PreTokenizer::Gpt2;
        assert_eq!(words(g, "Hello world"), ["Hello", " world"]);
        assert_eq!(words(g, "I'M 1234!!"), ["I", "'", "M", " 1234", "!!"]);
        assert_eq!(words(g, "a   b"), ["a", "  ", " b"]);
    }

    #[test]
    fn names_map_like_llama_cpp() {
        assert_eq!(PreTokenizer::from_name("qwen2"), Some(PreTokenizer::Qwen2));
        assert_eq!(
            PreTokenizer::from_name("deepseek-r1-qwen"),
            Some(PreTokenizer::Qwen2)
        );
        assert_eq!(PreTokenizer::from_name("gpt-2"), Some(PreTokenizer::Gpt2));
        for n in ["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"] {
            assert_eq!(PreTokenizer::from_name(n), Some(PreTokenizer::Llama3));
        }
        assert_eq!(
            PreTokenizer::from_name("smollm"),
            Some(PreTokenizer::Smollm)
        );
        // StarCoder shares SmolLM's regexes but not its flags: unmapped.
        assert_eq!(PreTokenizer::from_name("starcoder"), None);
        assert_eq!(PreTokenizer::from_name("tekken"), None);
        assert_eq!(PreTokenizer::from_name(""), None);
    }

    #[test]
    fn smollm_splits_digits_then_like_gpt2() {
        // GPT-2 alone keeps " 1969" one word; SmolLM cuts every digit out
        // first, so the space before it ends its piece and stands alone.
        assert_eq!(
            words(PreTokenizer::Smollm, "In 1969, x٣2 's  ok"),
            ["In", " ", "1", "9", "6", "9", ",", " x", "٣", "2", " '", "s", " ", " ok"]
        );
        assert_eq!(
            words(PreTokenizer::Gpt2, "In 1969, x"),
            ["In", " 1969", ",", " x"]
        );
    }
}

//! Property tests for the Llama tokenizers against independent references
//! written from scratch here (sharing no code with the crate): the LLAMA3
//! regex run by fancy-regex + textbook byte-level BPE with llama.cpp's
//! `ignore_merges`, and textbook SentencePiece merging by score with byte
//! fallback. Plus lossless round trips.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use common::{gguf_vocab_from_file, llama_bpe, llama_spm, llama_vocab_dir};
use proptest::prelude::*;

/// llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_LLAMA3 regex (llama.cpp's adapted form).
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

struct Bpe {
    re: fancy_regex::Regex,
    ranks: HashMap<(String, String), usize>,
    ids: HashMap<String, u32>,
}

struct Spm {
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
}

fn ids_of(tokens: &[String]) -> HashMap<String, u32> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

fn bpe_ref() -> &'static Bpe {
    static R: OnceLock<Bpe> = OnceLock::new();
    R.get_or_init(|| {
        let v = gguf_vocab_from_file(&llama_vocab_dir().join("ggml-vocab-llama-bpe.gguf"));
        let mut ranks = HashMap::new();
        for (i, m) in v.merges.iter().enumerate() {
            let (a, b) = m.split_once(' ').expect("merge has a space");
            ranks.entry((a.to_string(), b.to_string())).or_insert(i);
        }
        Bpe {
            re: fancy_regex::Regex::new(LLAMA3_REGEX).unwrap(),
            ranks,
            ids: ids_of(&v.tokens),
        }
    })
}

fn spm_ref() -> &'static Spm {
    static R: OnceLock<Spm> = OnceLock::new();
    R.get_or_init(|| {
        let v = gguf_vocab_from_file(&llama_vocab_dir().join("ggml-vocab-llama-spm.gguf"));
        Spm {
            ids: ids_of(&v.tokens),
            scores: v.scores,
        }
    })
}

/// GPT-2 `bytes_to_unicode`.
fn byte_char(b: u8) -> char {
    let keeps = |x: u8| {
        (b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || (0xAE..=0xFF).contains(&x)
    };
    if keeps(b) {
        return char::from(b);
    }
    let k = (0..b).filter(|&x| !keeps(x)).count() as u32;
    char::from_u32(256 + k).unwrap()
}

fn bpe_reference_encode(text: &str) -> Vec<u32> {
    let r = bpe_ref();
    let mut out = Vec::new();
    for m in r.re.find_iter(text) {
        let word: String = m.unwrap().as_str().bytes().map(byte_char).collect();
        if let Some(&id) = r.ids.get(&word) {
            out.push(id); // ignore_merges: a whole-word token is taken as is
            continue;
        }
        let mut syms: Vec<String> = word.chars().map(String::from).collect();
        loop {
            let best = (0..syms.len().saturating_sub(1))
                .filter_map(|i| {
                    r.ranks
                        .get(&(syms[i].clone(), syms[i + 1].clone()))
                        .map(|&rank| (rank, i))
                })
                .min();
            let Some((_, i)) = best else { break };
            let right = syms.remove(i + 1);
            syms[i].push_str(&right);
        }
        out.extend(syms.iter().map(|s| r.ids[s]));
    }
    out
}

fn spm_reference_encode(text: &str) -> Vec<u32> {
    let r = spm_ref();
    if text.is_empty() {
        return Vec::new(); // no text fragment, so no space prefix either
    }
    let escaped = format!(" {text}").replace(' ', "\u{2581}");
    let mut syms: Vec<String> = escaped.chars().map(String::from).collect();
    loop {
        // highest score, leftmost on ties
        let mut best: Option<(f32, usize)> = None;
        for i in 0..syms.len().saturating_sub(1) {
            if let Some(&id) = r.ids.get(&format!("{}{}", syms[i], syms[i + 1])) {
                let s = r.scores[id as usize];
                if best.is_none_or(|(bs, _)| s > bs) {
                    best = Some((s, i));
                }
            }
        }
        let Some((_, i)) = best else { break };
        let right = syms.remove(i + 1);
        syms[i].push_str(&right);
    }
    let mut out = Vec::new();
    for s in &syms {
        match r.ids.get(s) {
            Some(&id) => out.push(id),
            None => out.extend(s.bytes().map(|b| r.ids[&format!("<0x{b:02X}>")])),
        }
    }
    out
}

const POOL: &[&str] = &[
    "a", "Hello", "world", "Äpfel", "Cửa", "нещо", "大赛", "ក", "\u{17cb}", " ", "  ", "\t", "\n",
    "\r\n", "\u{A0}", "\u{3000}", "0", "1", "12", "333", "4567", "½", "'", "'s", "'RE", "'ll",
    "'D", "!", "?", ".", ",", "...", "(", ")", "<", "|", ">", "-", "=", "\"", "€", "\u{301}",
    "\u{200D}", "😀", "🦙", "🚀", "👍🏽", "𝄞", "ꙮ", "\u{E000}",
];

fn pooled_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(POOL), 0..30).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn llama_bpe_agrees_with_reference(s in pooled_text()) {
        prop_assert_eq!(llama_bpe().encode(&s, false, false), bpe_reference_encode(&s), "text {:?}", s);
    }

    #[test]
    fn llama_spm_agrees_with_reference(s in pooled_text()) {
        prop_assert_eq!(llama_spm().encode(&s, false, false), spm_reference_encode(&s), "text {:?}", s);
    }

    #[test]
    fn llama_spm_decode_inverts_encode(s in any::<String>()) {
        // U+2581 in the input reads as a space, in SentencePiece and in llama.cpp
        prop_assume!(!s.contains('\u{2581}'));
        let tok = llama_spm();
        prop_assert_eq!(tok.decode(&tok.encode(&s, false, false)).unwrap(), s);
    }

    #[test]
    fn llama_bpe_stream_inverts_encode(s in any::<String>()) {
        // decode() cleans spaces for llama3 like llama.cpp; the stream does not
        let tok = llama_bpe();
        let mut d = shohin_tokenizer::StreamDecoder::sequence(true);
        let mut out = String::new();
        for id in tok.encode(&s, false, false) {
            out.push_str(&d.push(tok, id).unwrap());
        }
        out.push_str(&d.flush());
        prop_assert_eq!(out, s);
    }
}

#[test]
fn references_reproduce_llama_cpp_vectors() {
    // the references must give llama.cpp's recorded answers, or the
    // comparisons above prove nothing
    let dir = llama_vocab_dir();
    for (name, f) in [
        (
            "ggml-vocab-llama-bpe.gguf",
            bpe_reference_encode as fn(&str) -> Vec<u32>,
        ),
        ("ggml-vocab-llama-spm.gguf", spm_reference_encode),
    ] {
        let v = common::read_vectors(
            &dir.join(format!("{name}.inp")),
            &dir.join(format!("{name}.out")),
        );
        for (text, ids) in v {
            assert_eq!(f(&text), ids, "{name}: {text:?}");
        }
    }
}

#[test]
fn long_inputs_encode_quickly() {
    let unit = "The quick brown fox, isn't it? def f(x):\n    return x*2  # 中文 😀 12345\n";
    let text = unit.repeat(10_000 / unit.len() + 1);
    let long_word = "ab".repeat(10_000);
    for tok in [llama_spm(), llama_bpe()] {
        let start = std::time::Instant::now();
        let ids = tok.encode(&text, false, false);
        let ids2 = tok.encode(&long_word, false, false);
        let elapsed = start.elapsed();
        assert!(!ids.is_empty() && !ids2.is_empty());
        // milliseconds in practice; loose for loaded CI machines but catches
        // quadratic behaviour
        assert!(
            elapsed.as_millis() < 1000,
            "{tok:?}: encoding took {elapsed:?}"
        );
    }
}

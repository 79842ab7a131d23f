//! Property tests: lossless round trip, and agreement with an independent
//! reference pipeline (the Qwen2 regex run by fancy-regex + textbook GPT-2
//! byte-level BPE written from scratch below, sharing no code with the crate).

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use common::{fixtures, qwen2_fixture, vocab_from_gguf};
use proptest::prelude::*;

/// llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_QWEN2 regex (the form llama.cpp uses,
/// with the case-insensitive group spelled out).
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

struct Reference {
    re: fancy_regex::Regex,
    ranks: HashMap<(String, String), usize>,
    ids: HashMap<String, u32>,
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let v = vocab_from_gguf(&fixtures().join("ggml-vocab-qwen2.gguf"));
        let mut ranks = HashMap::new();
        for (i, m) in v.merges.iter().enumerate() {
            let (a, b) = m.split_once(' ').expect("merge has a space");
            ranks.entry((a.to_string(), b.to_string())).or_insert(i);
        }
        let ids = v
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Reference {
            re: fancy_regex::Regex::new(QWEN2_REGEX).unwrap(),
            ranks,
            ids,
        }
    })
}

/// GPT-2 `bytes_to_unicode`, written out independently of the crate.
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

/// Regex split, byte-level spelling, then repeatedly merge the adjacent pair
/// of lowest rank (leftmost on ties).
fn reference_encode(text: &str) -> Vec<u32> {
    let r = reference();
    let mut out = Vec::new();
    for m in r.re.find_iter(text) {
        let word = m.unwrap().as_str();
        let mut syms: Vec<String> = word.bytes().map(|b| byte_char(b).to_string()).collect();
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

/// Pieces that stress the pre-tokenizer: contractions in both cases, all kinds
/// of whitespace, digits of several scripts, letters, combining marks, emoji,
/// CJK, punctuation. All are long-assigned code points, so Rust's Unicode
/// tables and llama.cpp's agree on them.
const POOL: &[&str] = &[
    "a", "b", "z", "Q", "the", " the", "ing", "Hello", " world", "é", "ß", "ж", "Ж", "ğ", "İ", "ı",
    "大", "赛", "中文", "한", "語", "ひ", "カ", "0", "7", "42", "٣", "½", "²", "３", " ", " ", " ",
    "  ", "\t", "\n", "\r", "\r\n", "\u{0B}", "\u{0C}", "\u{A0}", "\u{3000}", "\u{2028}", "\u{85}",
    "'", "'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'Ll", "'d", "'D", "!", "?", ".", ",",
    "...", "(", ")", "{", "}", "<", "|", ">", "$", "€", "-", "_", "=", "\"", "#", "@", "/", "\\",
    "\u{301}", "\u{308}", "\u{93F}", "\u{200D}", "\u{200B}", "😀", "👍🏽", "🦙", "🚀", "✅", "𬴊",
    "\u{E000}",
];

fn pooled_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(POOL), 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode_for_any_text(s in any::<String>()) {
        let tok = qwen2_fixture();
        let ids = tok.encode(&s, false, false);
        prop_assert_eq!(tok.decode(&ids).unwrap(), s);
    }

    #[test]
    fn decode_inverts_encode_for_pooled_text(s in pooled_text()) {
        let tok = qwen2_fixture();
        let ids = tok.encode(&s, false, false);
        prop_assert_eq!(tok.decode(&ids).unwrap(), s);
    }

    #[test]
    fn encode_agrees_with_reference_pipeline(s in pooled_text()) {
        prop_assert_eq!(qwen2_fixture().encode(&s, false, false), reference_encode(&s), "text {:?}", s);
    }
}

#[test]
fn reference_pipeline_is_itself_right() {
    // the reference must reproduce llama.cpp's known answers, or the
    // comparison above proves nothing
    assert_eq!(
        reference_encode("def quicksort(xs):\n"),
        [750, 3974, 6860, 53322, 982]
    );
    assert_eq!(
        reference_encode("Write a haiku about autumn."),
        [7985, 264, 6386, 38242, 911, 41674, 13]
    );
    assert_eq!(byte_char(b' '), 'Ġ');
    assert_eq!(byte_char(b'\n'), 'Ċ');
}

#[test]
fn long_inputs_encode_quickly() {
    let tok = qwen2_fixture();
    // ~10 KB of mixed prose, code and CJK, plus a 20 KB word without spaces
    let unit = "The quick brown fox, isn't it? def f(x):\n    return x*2  # 中文 😀\n";
    let text = unit.repeat(10_000 / unit.len() + 1);
    let long_word = "ab".repeat(10_000);
    let start = std::time::Instant::now();
    let ids = tok.encode(&text, false, true);
    let ids2 = tok.encode(&long_word, false, false);
    let elapsed = start.elapsed();
    assert_eq!(tok.decode(&ids).unwrap(), text);
    assert_eq!(tok.decode(&ids2).unwrap(), long_word);
    // milliseconds in practice; the bound is loose for loaded CI machines but
    // catches quadratic behaviour (which takes seconds here)
    assert!(elapsed.as_millis() < 500, "encoding took {elapsed:?}");
}

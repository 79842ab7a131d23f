//! Shared test helpers: build a `Tokenizer` from a GGUF file with shohin-gguf;
//! fixture paths and golden files come from `shohin-test-support`.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use shohin_gguf::{GgufFile, Value};
use shohin_tokenizer::{Tokenizer, VocabData};

pub use shohin_test_support::{golden, ids};

/// `shared/fixtures` beside the work tree.
pub fn fixtures() -> PathBuf {
    shohin_test_support::shared().join("fixtures")
}

fn opt_u32(f: &GgufFile, key: &str) -> Option<u32> {
    f.get(key)
        .map(|_| f.get_u32(key).unwrap_or_else(|e| panic!("{key}: {e}")))
}

fn opt_bool(f: &GgufFile, key: &str) -> Option<bool> {
    f.get(key).map(|v| match v {
        Value::Bool(b) => *b,
        other => panic!("{key}: expected bool, found {other:?}"),
    })
}

/// The `tokenizer.ggml.*` metadata of a GGUF file as `VocabData`, the way the
/// engine fills it.
pub fn vocab_from_gguf(path: &Path) -> VocabData {
    let f = GgufFile::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let strings = |key: &str| -> Vec<String> {
        f.get_array(key)
            .unwrap_or_else(|e| panic!("{key}: {e}"))
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => panic!("{key}: expected strings, found {other:?}"),
            })
            .collect()
    };
    let token_types = match f.get("tokenizer.ggml.token_type") {
        None => Vec::new(),
        Some(_) => f
            .get_array("tokenizer.ggml.token_type")
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::I32(t) => *t,
                other => panic!("token_type: expected i32, found {other:?}"),
            })
            .collect(),
    };
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    VocabData {
        tokens: strings("tokenizer.ggml.tokens"),
        token_types,
        merges: strings("tokenizer.ggml.merges"),
        pre: f.get_str("tokenizer.ggml.pre").unwrap().to_string(),
        bos: opt_u32(&f, "tokenizer.ggml.bos_token_id"),
        eos: opt_u32(&f, "tokenizer.ggml.eos_token_id"),
        eot: opt_u32(&f, "tokenizer.ggml.eot_token_id"),
        pad: opt_u32(&f, "tokenizer.ggml.padding_token_id"),
        add_bos: opt_bool(&f, "tokenizer.ggml.add_bos_token").unwrap_or(false),
        add_eos: opt_bool(&f, "tokenizer.ggml.add_eos_token").unwrap_or(false),
    }
}

/// Tokenizer of llama.cpp's `ggml-vocab-qwen2.gguf` test vocabulary (built once per test binary).
pub fn qwen2_fixture() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        Tokenizer::new(vocab_from_gguf(&fixtures().join("ggml-vocab-qwen2.gguf")))
            .expect("fixture vocab is valid")
    })
}

/// Tokenizer of the real Qwen2.5-Coder-0.5B-Instruct model.
pub fn real_model() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        Tokenizer::new(vocab_from_gguf(&shohin_test_support::real_model()))
            .expect("real model vocab is valid")
    })
}

//! Shared test helpers: build a `Tokenizer` from a GGUF file with shohin-gguf;
//! fixture paths and golden files come from `shohin-test-support`.
#![allow(dead_code, unused_imports)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use shohin_gguf::{GgufFile, Value};
use shohin_tokenizer::{GgufVocab, Tokenizer, VocabData};

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

/// Folder of llama.cpp's Llama test vocabularies, located exactly as
/// scripts/fetch-vocabs.sh places them: `$SHOHIN_FIXTURES/vocab`, else
/// `~/.cache/shohin-fixtures/vocab`. Panics (never skips) when a file is
/// missing, naming the script that fetches them.
pub fn llama_vocab_dir() -> PathBuf {
    let base = match std::env::var_os("SHOHIN_FIXTURES") {
        // the script's `${SHOHIN_FIXTURES:-...}` treats an empty value as unset
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/shohin-fixtures")
        }
    };
    let dir = base.join("vocab");
    for f in [
        "ggml-vocab-llama-spm.gguf",
        "ggml-vocab-llama-spm.gguf.inp",
        "ggml-vocab-llama-spm.gguf.out",
        "ggml-vocab-llama-bpe.gguf",
        "ggml-vocab-llama-bpe.gguf.inp",
        "ggml-vocab-llama-bpe.gguf.out",
    ] {
        assert!(
            dir.join(f).is_file(),
            "llama.cpp vocabulary fixture {} is missing: run `bash scripts/fetch-vocabs.sh` \
             in the repository root first (it fetches them into $SHOHIN_FIXTURES/vocab, \
             default ~/.cache/shohin-fixtures/vocab)",
            dir.join(f).display()
        );
    }
    dir
}

/// All `tokenizer.ggml.*` keys of a GGUF file as `GgufVocab`, absent keys
/// as `None` / empty, the way a model loader should fill it.
pub fn gguf_vocab_from_file(path: &Path) -> GgufVocab {
    let f = GgufFile::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let array = |key: &str| -> &[Value] {
        match f.get(key) {
            None => &[],
            Some(_) => f.get_array(key).unwrap_or_else(|e| panic!("{key}: {e}")),
        }
    };
    let strings = |key: &str| -> Vec<String> {
        array(key)
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => panic!("{key}: expected strings, found {other:?}"),
            })
            .collect()
    };
    let scores = array("tokenizer.ggml.scores")
        .iter()
        .map(|v| match v {
            Value::F32(s) => *s,
            Value::I32(s) => *s as f32,
            other => panic!("scores: expected f32 or i32, found {other:?}"),
        })
        .collect();
    let token_types = array("tokenizer.ggml.token_type")
        .iter()
        .map(|v| match v {
            Value::I32(t) => *t,
            other => panic!("token_type: expected i32, found {other:?}"),
        })
        .collect();
    GgufVocab {
        model: f.get_str("tokenizer.ggml.model").unwrap().to_string(),
        pre: f
            .get("tokenizer.ggml.pre")
            .map(|_| f.get_str("tokenizer.ggml.pre").unwrap().to_string()),
        tokens: strings("tokenizer.ggml.tokens"),
        scores,
        token_types,
        merges: strings("tokenizer.ggml.merges"),
        bos: opt_u32(&f, "tokenizer.ggml.bos_token_id"),
        eos: opt_u32(&f, "tokenizer.ggml.eos_token_id"),
        eot: opt_u32(&f, "tokenizer.ggml.eot_token_id"),
        unk: opt_u32(&f, "tokenizer.ggml.unknown_token_id"),
        pad: opt_u32(&f, "tokenizer.ggml.padding_token_id"),
        add_bos: opt_bool(&f, "tokenizer.ggml.add_bos_token"),
        add_eos: opt_bool(&f, "tokenizer.ggml.add_eos_token"),
        add_space_prefix: opt_bool(&f, "tokenizer.ggml.add_space_prefix"),
    }
}

/// Tokenizer of llama.cpp's `ggml-vocab-llama-spm.gguf` (SentencePiece, Llama 2).
pub fn llama_spm() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let path = llama_vocab_dir().join("ggml-vocab-llama-spm.gguf");
        Tokenizer::from_gguf_vocab(gguf_vocab_from_file(&path)).expect("llama-spm vocab is valid")
    })
}

/// Tokenizer of llama.cpp's `ggml-vocab-llama-bpe.gguf` (byte-level BPE, Llama 3).
pub fn llama_bpe() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let path = llama_vocab_dir().join("ggml-vocab-llama-bpe.gguf");
        Tokenizer::from_gguf_vocab(gguf_vocab_from_file(&path)).expect("llama-bpe vocab is valid")
    })
}

/// Read `<inp>`/`<out>` test vectors exactly as llama.cpp's
/// tests/test-tokenizer-0.cpp `read_tests` does: inputs are separated by
/// "\n__ggml_vocab_test__\n" (the file ends with one, so there is no empty
/// trailing input); each output line is stripped and split on spaces.
pub fn read_vectors(inp: &Path, out: &Path) -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(inp).unwrap();
    let out = std::fs::read_to_string(out).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(sep) {
            Some(p) => {
                inputs.push(inp[pos..pos + p].to_string());
                pos += p + sep.len();
            }
            None => {
                inputs.push(inp[pos..].to_string());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.trim()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "input and output files have different numbers of tests"
    );
    inputs.into_iter().zip(outputs).collect()
}

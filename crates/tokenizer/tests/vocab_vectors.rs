//! llama.cpp's own tokenizer test vectors for the qwen2 vocabulary
//! (`models/ggml-vocab-qwen2.gguf.inp/.out`, checked by tests/test-tokenizer-0.cpp).

mod common;

use common::{fixtures, qwen2_fixture};

/// Read the vectors exactly as test-tokenizer-0.cpp `read_tests` does: inputs
/// are separated by "\n__ggml_vocab_test__\n" (the file ends with one, so no
/// empty trailing input); each output line is stripped and split on spaces.
fn read_vectors() -> Vec<(String, Vec<u32>)> {
    let inp = std::fs::read_to_string(fixtures().join("ggml-vocab-qwen2.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(fixtures().join("ggml-vocab-qwen2.gguf.out")).unwrap();
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

#[test]
fn all_llama_cpp_qwen2_vectors_match() {
    let tok = qwen2_fixture();
    let vectors = read_vectors();
    assert_eq!(vectors.len(), 46);
    let mut failures = Vec::new();
    for (text, expected) in &vectors {
        // test-tokenizer-0.cpp: common_tokenize(ctx, text, add_special = false, parse_special = false)
        let got = tok.encode(text, false, false);
        if &got != expected {
            failures.push(format!(
                "{text:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
        // and the detokenized ids must give the text back
        assert_eq!(
            &tok.decode(expected).unwrap(),
            text,
            "decode of the expected ids"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn vectors_cover_the_tricky_cases() {
    // guard against a silently truncated fixture: these inputs must be present
    let v = read_vectors();
    let has = |s: &str| v.iter().any(|(t, _)| t == s);
    assert!(has(""));
    assert!(has("\n\n\n"));
    assert!(has("   Hello"));
    assert!(has("333333333"));
    assert!(v.iter().any(|(t, _)| t.contains("🦙")));
    assert!(v
        .iter()
        .any(|(t, ids)| t.contains("We'Ve a'lL") && ids.len() > 100));
}

//! llama.cpp's own tokenizer test vectors for the qwen2 vocabulary
//! (`models/ggml-vocab-qwen2.gguf.inp/.out`, checked by tests/test-tokenizer-0.cpp).

mod common;

use common::{fixtures, qwen2_fixture};

fn read_vectors() -> Vec<(String, Vec<u32>)> {
    common::read_vectors(
        &fixtures().join("ggml-vocab-qwen2.gguf.inp"),
        &fixtures().join("ggml-vocab-qwen2.gguf.out"),
    )
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

//! Token ids recorded from llama.cpp itself (libllama `llama_tokenize`, see
//! scripts/gen_llama_vectors.py) for hand-picked edge cases and seeded random
//! strings (whitespace variants, contractions, marks, emoji, CJK, unassigned
//! code points, special tokens), with parse_special off and on, for the
//! llama.cpp test vocabulary and the real Qwen2.5-Coder vocabulary.

mod common;

use common::{ids, qwen2_fixture, real_model};

#[test]
fn encode_matches_llama_cpp_on_recorded_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/llama_cpp_vectors.json"
    );
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 300,
        "vector file truncated: {} cases",
        cases.len()
    );
    let (fx, real) = (qwen2_fixture(), real_model());
    let mut failures = Vec::new();
    let mut n_special_differs = 0;
    for c in cases {
        let text = c["text"].as_str().unwrap();
        for (tok, key, parse_special) in [
            (fx, "fixture", false),
            (fx, "fixture_special", true),
            (real, "real", false),
            (real, "real_special", true),
        ] {
            let expected = ids(&c[key]);
            let got = tok.encode(text, false, parse_special);
            if got != expected {
                failures.push(format!(
                    "{key} {text:?}\n  llama.cpp {expected:?}\n  ours      {got:?}"
                ));
            }
        }
        if c["real"] != c["real_special"] {
            n_special_differs += 1;
        }
    }
    // the corpus must exercise special-token parsing, not only plain text
    assert!(
        n_special_differs > 50,
        "only {n_special_differs} cases depend on parse_special"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// FNV-1a 64, continuing from `h` (same as scripts/gen_llama_vectors.py).
fn fnv1a64(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    h
}

#[test]
fn every_token_piece_matches_llama_cpp() {
    // digest over (u32 LE length, bytes) of llama_token_to_piece for all ids
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/llama_cpp_vectors.json"
    );
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, tok) in [("fixture", qwen2_fixture()), ("real", real_model())] {
        for (key, special) in [("special", true), ("plain", false)] {
            let mut h = 0xCBF2_9CE4_8422_2325u64;
            for id in 0..tok.n_vocab() as u32 {
                let piece = tok.piece(id, special).unwrap();
                h = fnv1a64(&(piece.len() as u32).to_le_bytes(), h);
                h = fnv1a64(piece, h);
            }
            let expected = data["piece_digests"][name][key].as_str().unwrap();
            assert_eq!(format!("{h:016x}"), expected, "{name} special={special}");
        }
    }
}

//! The `llama` architecture on a real model: SmolLM2-135M-Instruct, Q4_1
//! matrices, tied Q8_0 output, GQA 9/3 heads, NORM (adjacent-pair) RoPE,
//! the `smollm` BPE pre-tokenizer (scripts/fetch-llama-model.sh), against
//! llama.cpp's goldens (data/gen_llama_goldens.sh): llama.cpp's prompt ids,
//! the same greedy ids up to the first near-tie, and past it, fed
//! llama.cpp's ids, the same top-1 wherever its top-2 gap is larger.

mod common;
use common::*;
use serde_json::Value as Json;

/// `<|im_end|>` and `<|endoftext|>` of this vocabulary.
const EOS: u32 = 2;

fn goldens() -> Json {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llama_goldens.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn smollm2_matches_llama_cpp() {
    let path = llama_model();
    let m = load(&path, 2);
    assert_eq!(m.config.arch, shohin_engine::config::Arch::Llama);
    let g = goldens();
    // (case, fewest free-running and forced steps compared), measured:
    // every greedy step of every case is equal; story has one near-tie.
    let cases = [("story", 32, 31), ("chat", 48, 48), ("digits", 16, 16)];
    for (name, min_free, min_forced) in cases {
        let c = &g["cases"][name];
        let (_, _, worst) = check_golden(name, &m, c, EOS, (min_free, min_forced));
        // This 30-layer model's logits reach 40, and it amplifies last-bit
        // differences: llama.cpp itself, evaluating the same ids one token
        // at a time instead of batched, moves its own top-20 logits by up to
        // 0.32 (story), 1.06 (chat) and 0.68 (digits), measured. shohin
        // measured 0.53-0.69, 1.14-1.44 and 0.64.
        assert!(worst < 1.6, "{name}: logits drift {worst} from llama.cpp");
    }
}

#[test]
fn smollm2_tokenizes_like_llama_cpp() {
    let path = llama_model();
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = shohin_engine::vocab::load_tokenizer(&f).unwrap();
    let g = goldens();
    for (name, c) in g["cases"].as_object().unwrap() {
        let text = c["prompt"].as_str().unwrap();
        assert_eq!(
            tok.encode(text, true, true),
            ids(&c["prompt_ids"]),
            "{name}: prompt ids"
        );
    }
}

//! The real Qwen2.5-Coder-0.5B fixture (qwen2; Q5_0/Q8_0/Q4_K/Q6_K/F32)
//! through the binary: greedy ids and tokenization against llama.cpp's
//! goldens, `info` against gguf-py's reading of the file. A missing fixture
//! is a failure, never a skip. Only a few tokens are generated: with two
//! threads the model decodes at about 6 tokens per second.

mod common;
use common::*;
use serde_json::json;

#[test]
fn greedy_quicksort_matches_llama_cpp() {
    let model = s(&real_model());
    let g = golden("qwen2.5-coder-0.5b_quicksort.json");
    let prompt = g["prompt"].as_str().expect("prompt");
    assert_eq!(prompt, "def quicksort(xs):\n");
    let args = [
        "run", "-m", &model, "-t", "2", "--temp", "0", "--json", "-n", "8", "-p", prompt,
    ];
    let j = shohin(&args).ok().json();
    assert_eq!(
        ids(&j["prompt_tokens"]),
        ids(&g["prompt_ids"]),
        "prompt ids"
    );
    // The first 8 greedy steps have top-2 gaps of 1.6 or more in llama.cpp,
    // far above the rounding noise between the two implementations.
    assert_eq!(ids(&j["tokens"]), ids(&g["greedy_ids"])[..8], "greedy ids");
    let text = j["text"].as_str().expect("text");
    assert_eq!(text, "    if len(xs) <= 1", "{j}");
    let want_text = g["greedy_text"].as_str().expect("greedy_text");
    assert!(want_text.starts_with(text), "{text:?} vs {want_text:?}");
}

#[test]
fn tokenize_haiku_prompt_matches_llama_cpp() {
    let model = s(&real_model());
    let g = golden("qwen2.5-coder-0.5b_haiku.json");
    let prompt = g["prompt"].as_str().expect("prompt");
    let want = ids(&g["prompt_ids"]);
    let out = shohin(&["tokenize", "--json", "-m", &model, prompt]).ok();
    assert_eq!(ids(&out.json()["ids"]), want, "{out}");
    // Plain output is llama-tokenize's `[a, b, c]`.
    let out = shohin(&["tokenize", "-m", &model, prompt]).ok();
    let list: Vec<String> = want.iter().map(u32::to_string).collect();
    assert_eq!(out.stdout.trim(), format!("[{}]", list.join(", ")), "{out}");
    // Without special-token parsing, <|im_start|> (151644) is plain text.
    let out = shohin(&[
        "tokenize",
        "--json",
        "--no-parse-special",
        "-m",
        &model,
        prompt,
    ])
    .ok();
    let plain = ids(&out.json()["ids"]);
    assert!(!plain.contains(&151_644), "{out}");
    assert!(plain.len() > want.len(), "{out}");
}

#[test]
fn info_describes_the_real_model() {
    let model = s(&real_model());
    let j = shohin(&["info", "--json", "-m", &model]).ok().json();
    assert_eq!(j["architecture"], "qwen2", "{j}");
    let h = &j["hparams"];
    assert_eq!(h["n_layer"], 24, "{j}");
    assert_eq!(h["n_embd"], 896, "{j}");
    assert_eq!(h["n_head"], 14, "{j}");
    assert_eq!(h["n_head_kv"], 2, "{j}");
    assert_eq!(h["n_ff"], 4864, "{j}");
    assert_eq!(h["n_ctx_train"], 32768, "{j}");
    assert_eq!(j["vocab_size"], 151_936, "{j}");
    assert_eq!(j["chat_template"], true, "{j}");
    assert_eq!(j["gguf_version"], 3, "{j}");
    // Counted with gguf-py's GGUFReader (tensor_type names, n_elements,
    // n_bytes): 291 tensors, output.weight present (Q8_0).
    let types = json!({"Q5_0": 133, "F32": 121, "Q8_0": 13, "Q6_K": 12, "Q4_K": 12});
    assert_eq!(j["tensor_types"], types, "{j}");
    assert_eq!(j["tensors"], 291, "{j}");
    assert_eq!(j["n_params"], 630_167_424u64, "{j}");
    assert_eq!(j["tensor_bytes"], 485_452_288u64, "{j}");
    assert_eq!(j["tied_output"], false, "{j}");
    assert_eq!(j["special_tokens"]["eos"]["id"], 151_645, "{j}");
    assert_eq!(j["special_tokens"]["eos"]["text"], "<|im_end|>", "{j}");
    // The human-readable form says the same.
    let out = shohin(&["info", "-m", &model]).ok();
    for needle in ["qwen2", "layers 24", "151936 tokens", "Q5_0: 133"] {
        assert!(out.stdout.contains(needle), "lacks {needle:?}: {out}");
    }
}

#[test]
fn info_describes_the_tiny_model() {
    let model = s(&tiny());
    let j = shohin(&["info", "--json", "-m", &model]).ok().json();
    assert_eq!(j["architecture"], "qwen3", "{j}");
    assert_eq!(j["hparams"]["n_layer"], 4, "{j}");
    assert_eq!(j["hparams"]["head_dim"], 64, "{j}");
    assert_eq!(j["tensor_types"], json!({"Q1_0": 30, "F32": 17}), "{j}");
    // gguf-py lists output.weight (Q1_0) in tiny-q1_0.gguf: not tied.
    assert_eq!(j["tied_output"], false, "{j}");
    assert_eq!(j["n_params"], 80_939_776u64, "{j}");
    assert_eq!(j["tensor_bytes"], 11_393_024u64, "{j}");
}

/// Without output.weight the output projection is token_embd.weight:
/// `info` says so and `run` still works.
#[test]
fn tied_output_when_output_weight_is_absent() {
    let f = shohin_gguf::GgufFile::open(&tiny()).expect("open tiny");
    let mut w = shohin_gguf::GgufWriter::new(f.metadata().to_vec());
    for t in f.tensors().iter().filter(|t| t.name != "output.weight") {
        w.add_tensor(
            t.name.clone(),
            t.dims.clone(),
            t.ggml_type,
            f.tensor_data(t),
        );
    }
    let path = scratch("tied").join("tied.gguf");
    w.write_to_path(&path).expect("write");
    let p = s(&path);
    let j = shohin(&["info", "--json", "-m", &p]).ok().json();
    assert_eq!(j["tied_output"], true, "{j}");
    assert_eq!(j["tensors"], 46, "{j}");
    let args = [
        "run", "-m", &p, "-t", "2", "--temp", "0", "-n", "2", "--json", "-p", "hi",
    ];
    let j = shohin(&args).ok().json();
    assert_eq!(ids(&j["tokens"]).len(), 2, "{j}");
}

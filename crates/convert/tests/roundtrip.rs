//! Converts a random Qwen3 checkpoint written by the test and checks the
//! GGUF: llama.cpp's keys and tensor names, the real Qwen vocabulary back
//! token for token, and shohin's logits against a float64 forward of the
//! checkpoint's own tensors.

mod common;

use common::*;
use shohin_convert::{convert, ConvertError, Options, OutType};
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_engine::session::Session;
use shohin_gguf::{GgmlType, GgufFile, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The checkpoint, written once per test binary.
fn checkpoint() -> &'static (PathBuf, Checkpoint, Vocab) {
    static CK: OnceLock<(PathBuf, Checkpoint, Vocab)> = OnceLock::new();
    CK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-qwen3-ck");
        let _ = std::fs::remove_dir_all(&dir);
        let vocab = fixture_vocab();
        let ck = write_checkpoint(&dir, &vocab, true);
        (dir, ck, vocab)
    })
}

fn out_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn run(dir: &Path, out: &Path, t: OutType) -> Result<shohin_convert::Summary, ConvertError> {
    let opts = Options {
        out_type: t,
        threads: 2,
    };
    convert(dir, out, &opts, |_, _, _| {})
}

const PROMPT: [u32; 8] = [151644, 872, 198, 9707, 11, 1879, 0, 151645];

/// Max |shohin - f64| over the logits after each prompt token.
fn max_dlogit(path: &Path, ck: &Checkpoint) -> f64 {
    let f = GgufFile::open(path).unwrap();
    let model = Model::load(f, Box::new(CpuBackend::new(2).unwrap())).unwrap();
    assert_eq!(model.n_vocab(), ck.n_vocab);
    let reference = reference_logits(ck, &PROMPT);
    let mut s = Session::new(&model, 64);
    let mut worst = 0f64;
    for (i, &t) in PROMPT.iter().enumerate() {
        let got = if i == 0 {
            s.prompt(&[t]).unwrap()
        } else {
            s.step(t).unwrap()
        };
        for (a, b) in got.iter().zip(&reference[i]) {
            worst = worst.max((*a as f64 - b).abs());
        }
    }
    let spread = reference.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    eprintln!(
        "{}: max |dlogit| {worst:.5} (max |logit| {spread:.2})",
        path.display()
    );
    worst
}

fn u32_of(f: &GgufFile, key: &str) -> u32 {
    f.get_u32(key).unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[test]
fn metadata_and_vocabulary_as_llama_cpp_writes_them() {
    let (dir, ck, vocab) = checkpoint();
    let out = out_path("convert-meta.gguf");
    let s = run(dir, &out, OutType::F16).unwrap();
    assert_eq!(s.arch, "qwen3");
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), "qwen3");
    assert_eq!(f.get_str("general.type").unwrap(), "model");
    assert_eq!(u32_of(&f, "general.file_type"), 1);
    assert_eq!(u32_of(&f, "general.quantization_version"), 2);
    assert_eq!(u32_of(&f, "qwen3.block_count"), LAYERS as u32);
    assert_eq!(u32_of(&f, "qwen3.context_length"), 4096);
    assert_eq!(u32_of(&f, "qwen3.embedding_length"), HIDDEN as u32);
    assert_eq!(u32_of(&f, "qwen3.feed_forward_length"), FF as u32);
    assert_eq!(u32_of(&f, "qwen3.attention.head_count"), HEADS as u32);
    assert_eq!(u32_of(&f, "qwen3.attention.head_count_kv"), KV_HEADS as u32);
    assert_eq!(u32_of(&f, "qwen3.attention.key_length"), HEAD_DIM as u32);
    assert_eq!(u32_of(&f, "qwen3.attention.value_length"), HEAD_DIM as u32);
    assert_eq!(f.get_f32("qwen3.rope.freq_base").unwrap(), THETA as f32);
    assert_eq!(
        f.get_f32("qwen3.attention.layer_norm_rms_epsilon").unwrap(),
        EPS as f32
    );
    // the tokenizer: the fixture's tokens, types and merges exactly
    assert_eq!(f.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "qwen2");
    let strs = |k: &str| -> Vec<String> {
        f.get_array(k)
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                _ => panic!("{k}"),
            })
            .collect()
    };
    assert_eq!(strs("tokenizer.ggml.tokens"), vocab.tokens);
    assert_eq!(strs("tokenizer.ggml.merges"), vocab.merges);
    let types: Vec<i32> = f
        .get_array("tokenizer.ggml.token_type")
        .unwrap()
        .iter()
        .map(|v| match v {
            Value::I32(t) => *t,
            _ => panic!(),
        })
        .collect();
    assert_eq!(types, vocab.types);
    assert_eq!(u32_of(&f, "tokenizer.ggml.eos_token_id"), 151645);
    assert_eq!(u32_of(&f, "tokenizer.ggml.padding_token_id"), 151643);
    assert_eq!(u32_of(&f, "tokenizer.ggml.bos_token_id"), 151643);
    assert!(!f.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!f.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    assert_eq!(f.get_str("tokenizer.chat_template").unwrap(), TEMPLATE);
    // tensors: llama.cpp's names, 1-D in F32, tied output absent
    let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 1 + LAYERS * 11 + 1);
    assert!(f.tensor("output.weight").is_none());
    let ty = |n: &str| f.tensor(n).unwrap_or_else(|| panic!("{n}")).ggml_type;
    assert_eq!(ty("token_embd.weight"), GgmlType::F16);
    assert_eq!(ty("blk.1.attn_q.weight"), GgmlType::F16);
    assert_eq!(ty("blk.1.attn_q_norm.weight"), GgmlType::F32);
    assert_eq!(ty("blk.0.attn_k_norm.weight"), GgmlType::F32);
    assert_eq!(ty("blk.0.ffn_norm.weight"), GgmlType::F32);
    assert_eq!(ty("output_norm.weight"), GgmlType::F32);
    for n in [
        "attn_norm",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ] {
        assert!(f.tensor(&format!("blk.1.{n}.weight")).is_some(), "{n}");
    }
    let q = f.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(q.dims, vec![HIDDEN as u64, (HEADS * HEAD_DIM) as u64]);
    assert_eq!(ck.n_vocab, vocab.tokens.len());
}

#[test]
fn logits_match_a_float64_forward() {
    let (dir, ck, _) = checkpoint();
    for (t, tol) in [
        (OutType::F32, 0.1),
        (OutType::F16, 0.1),
        // the F16 embedding rounded to bf16 (8 bits of mantissa) and bf16
        // activations: a real loss of precision, not a conversion error
        (OutType::BF16, 0.3),
        // Q8_0 weights and activations: measured 0.67 on logits up to 21.5
        (OutType::Q8_0, 1.0),
    ] {
        let out = out_path(&format!("convert-{}.gguf", t.name()));
        run(dir, &out, t).unwrap();
        let d = max_dlogit(&out, ck);
        assert!(d < tol, "{}: max |dlogit| {d} >= {tol}", t.name());
    }
}

/// Copies the checkpoint (hard links would do, but the files are small).
fn copy_ck(name: &str) -> PathBuf {
    let (dir, _, _) = checkpoint();
    let to = out_path(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut j);
    std::fs::write(&p, j.to_string()).unwrap();
}

#[test]
fn errors_name_the_file_and_key() {
    let out = out_path("convert-err.gguf");
    let err = |dir: &Path| run(dir, &out, OutType::F16).unwrap_err().to_string();

    let d = copy_ck("convert-err-missing");
    edit_config(&d, |j| {
        j.as_object_mut().unwrap().remove("hidden_size");
    });
    let e = err(&d);
    assert!(
        e.contains("config.json") && e.contains("hidden_size") && e.contains("missing"),
        "{e}"
    );

    edit_config(&d, |j| {
        j["hidden_size"] = HIDDEN.into();
        j["architectures"] = serde_json::json!(["GPTNeoXForCausalLM"]);
    });
    let e = err(&d);
    assert!(
        e.contains("architectures") && e.contains("GPTNeoXForCausalLM"),
        "{e}"
    );

    // shape mismatch: config says more layers' worth of ffn
    edit_config(&d, |j| {
        j["architectures"] = serde_json::json!(["Qwen3ForCausalLM"]);
        j["intermediate_size"] = (FF * 2).into();
    });
    let e = err(&d);
    assert!(
        e.contains("mlp.gate_proj.weight") && e.contains("shape"),
        "{e}"
    );

    // missing tensor: one layer more than the shards hold
    edit_config(&d, |j| {
        j["intermediate_size"] = FF.into();
        j["num_hidden_layers"] = (LAYERS + 1).into();
    });
    let e = err(&d);
    assert!(
        e.contains("model.layers.2.") && e.contains("missing"),
        "{e}"
    );

    // untied without lm_head
    edit_config(&d, |j| {
        j["num_hidden_layers"] = LAYERS.into();
        j["tie_word_embeddings"] = false.into();
    });
    let e = err(&d);
    assert!(e.contains("lm_head.weight"), "{e}");

    let e = OutType::parse("q4_k_m").unwrap_err().to_string();
    assert!(e.contains("q4_k_m") && e.contains("q8_0"), "{e}");
}

/// llama.cpp itself loads shohin's converted files and computes the same
/// logits (the files are real GGUF, not a private dialect): its greedy ids
/// and top-20 logits, recorded by `tests/data/gen_llama_cpp_logits.sh`,
/// against shohin's on the same files, teacher-forced on llama.cpp's ids.
#[test]
fn llama_cpp_computes_the_same_logits_on_the_converted_files() {
    let (dir, _, _) = checkpoint();
    // Measured: f32 0.0004, f16 0.0028 (llama.cpp rounds to 4 decimals).
    for (t, tol) in [(OutType::F32, 0.005), (OutType::F16, 0.01)] {
        let out = out_path(&format!("convert-peer-{}.gguf", t.name()));
        run(dir, &out, t).unwrap();
        let golden = format!(
            "{}/tests/data/llama_cpp_logits_{}.json",
            env!("CARGO_MANIFEST_DIR"),
            t.name()
        );
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let model = Model::load(
            GgufFile::open(&out).unwrap(),
            Box::new(CpuBackend::new(2).unwrap()),
        )
        .unwrap();
        let mut s = Session::new(&model, 64);
        s.prompt(&ids(&g["prompt_ids"])).unwrap();
        let greedy = ids(&g["greedy_ids"]);
        let steps = g["steps"].as_array().unwrap();
        assert_eq!(steps.len(), greedy.len());
        let mut worst = 0f64;
        for (i, st) in steps.iter().enumerate() {
            let logits = s.logits();
            let top = ids(&st["top_ids"]);
            let best = (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
                .unwrap();
            assert_eq!(best as u32, top[0], "{}: step {i} top-1", t.name());
            for (id, l) in top.iter().zip(st["top_logits"].as_array().unwrap()) {
                let d = (f64::from(logits[*id as usize]) - l.as_f64().unwrap()).abs();
                worst = worst.max(d);
            }
            s.step(greedy[i]).unwrap();
        }
        eprintln!("{}: max |dlogit| vs llama.cpp = {worst:.4}", t.name());
        assert!(worst <= tol, "{}: {worst} > {tol}", t.name());
    }
}

//! `LlamaForCausalLM`: a random Llama checkpoint written by the test (no
//! Q/K norms, separate `lm_head`, the fixture's Qwen2 vocabulary), converted
//! by shohin and checked against two independent references recorded by
//! `tests/data/gen_llama_reference.sh`:
//! - the GGUF that llama.cpp's own `convert_hf_to_gguf.py` writes from the
//!   same checkpoint: every metadata key (in order) and value, every tensor's
//!   name, type, shape and data (sha256), for each output type;
//! - llama.cpp's logits on shohin's GGUF against a float64 forward of the
//!   checkpoint's own tensors with HF's rotate-half RoPE on the unpermuted
//!   Q/K rows (so a wrong `LlamaModel.permute` would show).

mod common;

use common::*;
use sha2::{Digest, Sha256};
use shohin_convert::{convert, ConvertError, Options, OutType};
use shohin_gguf::{GgufFile, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The checkpoint, written once per test binary. Its directory's name is
/// the GGUF's `general.name`, the same for the reference script.
fn checkpoint() -> &'static (PathBuf, Checkpoint) {
    static CK: OnceLock<(PathBuf, Checkpoint)> = OnceLock::new();
    CK.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("convert-llama-ck");
        let _ = std::fs::remove_dir_all(&dir);
        let ck = write_llama_checkpoint(&dir, &fixture_vocab());
        (dir, ck)
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

/// The converted file of `t` (converted once per type per binary).
fn converted(t: OutType) -> PathBuf {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let (dir, _) = checkpoint();
        for t in OutType::ALL {
            let s = run(
                dir,
                &out_path(&format!("convert-llama-{}.gguf", t.name())),
                t,
            )
            .unwrap();
            assert_eq!(s.arch, "llama");
        }
    });
    out_path(&format!("convert-llama-{}.gguf", t.name()))
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One metadata value as the reference script writes it: numbers in
/// decimal, f32 / f64 as their bits, short strings as themselves, long
/// strings and arrays (element type id and length) as a sha256 (strings: u64 length + UTF-8 bytes;
/// numbers: little-endian bytes; bools: one byte).
fn render(v: &Value) -> String {
    fn bytes(v: &Value, h: &mut Sha256) {
        match v {
            Value::U8(x) => h.update(x.to_le_bytes()),
            Value::I8(x) => h.update(x.to_le_bytes()),
            Value::U16(x) => h.update(x.to_le_bytes()),
            Value::I16(x) => h.update(x.to_le_bytes()),
            Value::U32(x) => h.update(x.to_le_bytes()),
            Value::I32(x) => h.update(x.to_le_bytes()),
            Value::U64(x) => h.update(x.to_le_bytes()),
            Value::I64(x) => h.update(x.to_le_bytes()),
            Value::F32(x) => h.update(x.to_bits().to_le_bytes()),
            Value::F64(x) => h.update(x.to_bits().to_le_bytes()),
            Value::Bool(b) => h.update([u8::from(*b)]),
            Value::String(s) => {
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Value::Array(_, a) => a.iter().for_each(|x| bytes(x, h)),
        }
    }
    match v {
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::F32(x) => format!("f32:{:08x}", x.to_bits()),
        Value::F64(x) => format!("f64:{:016x}", x.to_bits()),
        Value::Bool(b) => b.to_string(),
        Value::String(s) if s.len() <= 200 => s.clone(),
        Value::String(_) | Value::Array(..) => {
            let mut h = Sha256::new();
            bytes(v, &mut h);
            let n = match v {
                Value::Array(t, a) => format!("{}[{}]", t.id(), a.len()),
                _ => "string".into(),
            };
            format!("{n}:sha256:{}", hex(h.finalize()))
        }
    }
}

/// The GGUF as the reference JSON describes one: `kv` = [key, value type
/// id, rendered value] in file order, `tensors` = [name, ggml type id,
/// dims (ggml order), sha256 of the data] in file order.
fn describe(path: &Path) -> serde_json::Value {
    let f = GgufFile::open(path).unwrap();
    let kv: Vec<serde_json::Value> = f
        .metadata()
        .iter()
        .map(|(k, v)| serde_json::json!([k, v.value_type().id(), render(v)]))
        .collect();
    let tensors: Vec<serde_json::Value> = f
        .tensors()
        .iter()
        .map(|t| {
            serde_json::json!([
                t.name,
                t.ggml_type.id(),
                t.dims,
                hex(Sha256::digest(f.tensor_data(t)))
            ])
        })
        .collect();
    serde_json::json!({"kv": kv, "tensors": tensors})
}

fn data(name: &str) -> serde_json::Value {
    let p = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}")))
        .unwrap()
}

/// The authorship keys that gguf-py's `Metadata` heuristics derive from
/// the directory's name, model card and parameter count ("Convert Llama
/// Ck", "20M"), which shohin does not reproduce (its `general.name` is the
/// directory's name as it is): left out of the comparison.
const AUTHORSHIP: [&str; 2] = ["general.name", "general.size_label"];

fn without_authorship(kv: &serde_json::Value) -> Vec<serde_json::Value> {
    kv.as_array()
        .unwrap()
        .iter()
        .filter(|e| !AUTHORSHIP.contains(&e[0].as_str().unwrap()))
        .cloned()
        .collect()
}

/// (a) Byte for byte what convert_hf_to_gguf.py writes: every other key
/// (in order) and value, every tensor (in order) with its type, shape and
/// data.
#[test]
fn same_gguf_as_convert_hf_to_gguf() {
    let reference = data("llama_reference.json");
    for t in OutType::ALL {
        let want = &reference[t.name()];
        assert!(want.is_object(), "no reference for {}", t.name());
        let got = describe(&converted(t));
        let names = |kv: &serde_json::Value| -> Vec<String> {
            kv.as_array()
                .unwrap()
                .iter()
                .map(|e| e[0].as_str().unwrap().to_owned())
                .filter(|k| k.starts_with("general.") && k != "general.architecture")
                .collect()
        };
        // the converter's left-out keys are exactly these; shohin's, the name
        assert_eq!(
            names(&want["kv"]),
            [
                "general.type",
                "general.name",
                "general.size_label",
                "general.file_type",
                "general.quantization_version"
            ]
        );
        assert_eq!(
            names(&got["kv"]),
            [
                "general.type",
                "general.name",
                "general.file_type",
                "general.quantization_version"
            ]
        );
        let (gk, wk) = (
            without_authorship(&got["kv"]),
            without_authorship(&want["kv"]),
        );
        for (g, w) in gk.iter().zip(&wk) {
            assert_eq!(g, w, "{}: metadata", t.name());
        }
        assert_eq!(gk.len(), wk.len(), "{}: metadata count", t.name());
        let (gt, wt) = (
            got["tensors"].as_array().unwrap(),
            want["tensors"].as_array().unwrap(),
        );
        for (g, w) in gt.iter().zip(wt) {
            assert_eq!(g, w, "{}: tensor", t.name());
        }
        assert_eq!(gt.len(), wt.len(), "{}: tensor count", t.name());
        eprintln!(
            "{}: {} keys, {} tensors equal to convert_hf_to_gguf.py's",
            t.name(),
            gk.len(),
            gt.len()
        );
    }
}

/// The Llama keys shohin writes, readable without the reference data.
#[test]
fn llama_keys_and_tensors() {
    let f = GgufFile::open(&converted(OutType::F16)).unwrap();
    let u = |k: &str| f.get_u32(k).unwrap_or_else(|e| panic!("{k}: {e}"));
    assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(u("llama.block_count"), LAYERS as u32);
    assert_eq!(u("llama.context_length"), 2048);
    assert_eq!(u("llama.attention.head_count"), HEADS as u32);
    assert_eq!(u("llama.attention.head_count_kv"), KV_HEADS as u32);
    assert_eq!(u("llama.rope.dimension_count"), HEAD_DIM as u32);
    let (_, ck) = checkpoint();
    assert_eq!(u("llama.vocab_size"), ck.n_vocab as u32);
    // AutoConfig gives LlamaConfig's head_dim, so the converter writes it
    assert_eq!(u("llama.attention.key_length"), HEAD_DIM as u32);
    assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), "qwen2");
    assert!(!f.get_bool("tokenizer.ggml.add_space_prefix").unwrap());
    assert!(f.tensor("output.weight").is_some());
    assert!(f.tensor("blk.0.attn_q_norm.weight").is_none());
    assert_eq!(f.tensors().len(), 2 + LAYERS * 9 + 1);
}

/// (b) llama.cpp runs shohin's GGUF: its top-20 logits per step, recorded
/// by the script (teacher-forced on its own greedy ids), against the
/// float64 forward of the checkpoint's unpermuted tensors.
#[test]
fn llama_cpp_logits_on_the_converted_file_match_a_float64_forward() {
    let (_, ck) = checkpoint();
    for t in [OutType::F32, OutType::F16] {
        converted(t);
        let g = data(&format!("llama_cpp_logits_llama_{}.json", t.name()));
        let ids = |v: &serde_json::Value| -> Vec<u32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let prompt = ids(&g["prompt_ids"]);
        let greedy = ids(&g["greedy_ids"]);
        let mut seq = prompt.clone();
        seq.extend(&greedy[..greedy.len() - 1]);
        let reference = reference_logits(ck, &seq);
        let mut worst = 0f64;
        for (i, st) in g["steps"].as_array().unwrap().iter().enumerate() {
            let r = &reference[prompt.len() - 1 + i];
            let top = ids(&st["top_ids"]);
            for (id, l) in top.iter().zip(st["top_logits"].as_array().unwrap()) {
                worst = worst.max((r[*id as usize] - l.as_f64().unwrap()).abs());
            }
            // llama.cpp's best is the reference's best, or within the error
            let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
            assert!(r[best] - r[top[0] as usize] < 0.1, "{}: step {i}", t.name());
        }
        eprintln!("{}: max |dlogit| llama.cpp vs f64 = {worst:.4}", t.name());
        assert!(worst < 0.1, "{}: {worst}", t.name());
    }
}

fn copy_ck(name: &str) -> PathBuf {
    let (dir, _) = checkpoint();
    let to = out_path(name);
    let _ = std::fs::remove_dir_all(&to);
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

fn edit_json(p: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    f(&mut j);
    std::fs::write(p, j.to_string()).unwrap();
}

#[test]
fn llama_errors() {
    let out = out_path("convert-llama-err.gguf");
    let err = |dir: &Path| run(dir, &out, OutType::F16).unwrap_err().to_string();
    let d = copy_ck("convert-llama-err");
    let cfg = d.join("config.json");

    // an architecture shohin does not convert, by name
    edit_json(&cfg, |j| {
        j["architectures"] = serde_json::json!(["MistralForCausalLM"])
    });
    let e = err(&d);
    assert!(
        e.contains("architectures")
            && e.contains("MistralForCausalLM")
            && e.contains("LlamaForCausalLM"),
        "{e}"
    );

    // a tensor missing: one layer more than the shards hold
    edit_json(&cfg, |j| {
        j["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
        j["num_hidden_layers"] = (LAYERS + 1).into();
    });
    let e = err(&d);
    assert!(
        e.contains("model.layers.2.") && e.contains("missing"),
        "{e}"
    );

    // untied without lm_head: drop it from the index and the config's tie
    edit_json(&cfg, |j| j["num_hidden_layers"] = LAYERS.into());
    edit_json(&d.join("model.safetensors.index.json"), |j| {
        j["weight_map"]
            .as_object_mut()
            .unwrap()
            .remove("lm_head.weight");
    });
    // (the shard still holds it: the index lists files, so it is found)
    assert!(run(&d, &out, OutType::F16).is_ok());

    // llama3 RoPE scaling (rope_freqs.weight) is refused, not dropped
    edit_json(&cfg, |j| {
        j["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192});
    });
    let e = err(&d);
    assert!(e.contains("rope_scaling") && e.contains("llama3"), "{e}");
    // linear is written as the converter does
    edit_json(&cfg, |j| {
        j["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 4.0});
    });
    run(&d, &out, OutType::F16).unwrap();
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.get_str("llama.rope.scaling.type").unwrap(), "linear");
    assert_eq!(f.get_f32("llama.rope.scaling.factor").unwrap(), 4.0);
    edit_json(&cfg, |j| j["rope_scaling"] = serde_json::Value::Null);

    // no vocab_size: LlamaConfig's default 32000, as the converter reads
    // it through AutoConfig, which the embedding's rows contradict
    edit_json(&cfg, |j| {
        j.as_object_mut().unwrap().remove("vocab_size");
    });
    let e = err(&d);
    assert!(
        e.contains("embed_tokens") && e.contains("32000") && e.contains("shape"),
        "{e}"
    );
    edit_json(&cfg, |j| j["vocab_size"] = ck_vocab().into());

    // SentencePiece vocabularies are refused
    let tj = d.join("tokenizer.json");
    edit_json(&tj, |j| j["model"]["byte_fallback"] = true.into());
    let e = err(&d);
    assert!(
        e.contains("byte_fallback") && e.contains("SentencePiece"),
        "{e}"
    );
    edit_json(&tj, |j| j["model"]["byte_fallback"] = false.into());
    std::fs::write(d.join("tokenizer.model"), b"spm").unwrap();
    let e = err(&d);
    assert!(
        e.contains("tokenizer.model") && e.contains("SentencePiece"),
        "{e}"
    );
    std::fs::remove_file(d.join("tokenizer.model")).unwrap();

    // an unknown pre-tokenizer is refused, as the converter refuses its hash
    edit_json(&tj, |j| {
        j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+".into();
    });
    let e = err(&d);
    assert!(
        e.contains("pre_tokenizer") && e.contains("not recognized"),
        "{e}"
    );
}

fn ck_vocab() -> usize {
    checkpoint().1.n_vocab
}

/// The names of the pre-tokenizers shohin recognizes (the converter's
/// hash-detected `llama-bpe` of Llama 3 and `smollm` of SmolLM, whose
/// vocabularies are not among the fixtures): the `tokenizer.json`
/// `pre_tokenizer` of those models on the fixture checkpoint.
#[test]
fn llama_3_and_smollm_pre_tokenizers() {
    let d = copy_ck("convert-llama-pre");
    let out = out_path("convert-llama-pre.gguf");
    let llama3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let cases = [
        (
            serde_json::json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": llama3}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
            "llama-bpe",
        ),
        (
            serde_json::json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}),
            "smollm",
        ),
    ];
    for (pre, name) in cases {
        edit_json(&d.join("tokenizer.json"), |j| j["pre_tokenizer"] = pre);
        run(&d, &out, OutType::F16).unwrap();
        let f = GgufFile::open(&out).unwrap();
        assert_eq!(f.get_str("tokenizer.ggml.pre").unwrap(), name);
    }
}

/// gguf-py's `SpecialVocab` on other tokenizer files (Llama 3's
/// `TemplateProcessing` that adds BOS, a trailing special token that moves
/// EOS to EOT, a `RobertaProcessing` without `tokenizer_config.json`, a
/// lowercasing normalizer): the cases of `special_vocab_cases.json`
/// applied to the checkpoint, against the keys gguf-py wrote for them
/// (`special_vocab_reference.json`, by the script).
#[test]
fn special_tokens_as_gguf_py_writes_them() {
    let cases = data("special_vocab_cases.json");
    let want = data("special_vocab_reference.json");
    let out = out_path("convert-llama-special.gguf");
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let d = copy_ck(&format!("convert-llama-special-{name}"));
        edit_json(&d.join("tokenizer.json"), |j| {
            j["post_processor"] = c["post_processor"].clone();
            if let Some(n) = c.get("normalizer") {
                j["normalizer"] = n.clone();
            }
        });
        let tc = d.join("tokenizer_config.json");
        match &c["tokenizer_config"] {
            serde_json::Value::Null => std::fs::remove_file(&tc).unwrap(),
            v => std::fs::write(&tc, v.to_string()).unwrap(),
        }
        run(&d, &out, OutType::F16).unwrap();
        let f = GgufFile::open(&out).unwrap();
        let vocab_keys = [
            "model",
            "pre",
            "tokens",
            "token_type",
            "merges",
            "add_space_prefix",
        ]
        .map(|k| format!("tokenizer.ggml.{k}"));
        let got: Vec<serde_json::Value> = f
            .metadata()
            .iter()
            .filter(|(k, _)| k.starts_with("tokenizer.") && !vocab_keys.contains(k))
            .map(|(k, v)| serde_json::json!([k, v.value_type().id(), render(v)]))
            .collect();
        assert_eq!(
            serde_json::Value::Array(got),
            want[name],
            "{name}: special tokens"
        );
    }
}

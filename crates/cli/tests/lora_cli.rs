//! `--lora` / `--lora-scaled` and `shohin export-lora` on the tiny qwen3
//! fixture: a small adapter changes the output (scale 0 does not), the
//! merged file has llama-export-lora's types, and every bad adapter exits 1
//! naming the file and the tensor or key.

mod common;
use common::*;
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use std::path::{Path, PathBuf};

/// (name, dims, f32 values) of one adapter tensor.
type T = (String, Vec<u64>, Vec<f32>);

fn values(n: usize, amp: f32) -> Vec<f32> {
    (0..n)
        .map(|i| amp * (((i * 7919) % 997) as f32 / 498.5 - 1.0))
        .collect()
}

/// A rank-4 pair for `base` mapping `n_in` -> `n_out`.
fn pair(base: &str, n_in: u64, n_out: u64) -> Vec<T> {
    vec![
        (
            format!("{base}.lora_a"),
            vec![n_in, 4],
            values(n_in as usize * 4, 0.1),
        ),
        (
            format!("{base}.lora_b"),
            vec![4, n_out],
            values(n_out as usize * 4, 2.0),
        ),
    ]
}

fn write(dir: &Path, name: &str, meta: &[(&str, &str)], tensors: Vec<T>) -> PathBuf {
    let mut w = GgufWriter::new(
        meta.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    );
    w.add_metadata("adapter.lora.alpha", Value::F32(4.0));
    for (n, dims, v) in tensors {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.add_tensor(n, dims, GgmlType::F32, bytes);
    }
    let p = dir.join(name);
    w.write_to_path(&p).unwrap();
    p
}

const META: [(&str, &str); 3] = [
    ("general.architecture", "qwen3"),
    ("general.type", "adapter"),
    ("adapter.type", "lora"),
];

fn good(dir: &Path) -> PathBuf {
    let mut t = pair("blk.0.attn_q.weight", 256, 256);
    t.extend(pair("blk.1.ffn_down.weight", 768, 256));
    write(dir, "good.gguf", &META, t)
}

/// The top-5 logits of every step of a 4-token greedy run.
fn steps(extra: &[String]) -> serde_json::Value {
    let mut args: Vec<String> = [
        "run",
        "-m",
        &s(&tiny()),
        "-p",
        "Hello",
        "-n",
        "4",
        "--temp",
        "0",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    args.extend(["--json".into(), "--logits-top".into(), "5".into()]);
    args.extend(extra.iter().cloned());
    shohin(&args).ok().json()["steps"].clone()
}

#[test]
fn adapter_changes_output_and_scale_0_does_not() {
    let dir = scratch("lora_changes");
    let a = s(&good(&dir));
    let base = steps(&[]);
    let with = steps(&["--lora".into(), a.clone()]);
    assert_ne!(base, with, "the adapter changed nothing");
    let zero = steps(&["--lora-scaled".into(), format!("{a}:0")]);
    assert_eq!(base, zero, "scale 0 must equal no adapter");
    // Two adapters at 0.5 each = one at 1 (same order of products: only
    // last-bit differences, so compare the ids, not the logits).
    let half = steps(&["--lora-scaled".into(), format!("{a}:0.5,{a}:0.5")]);
    let ids = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["top"][0]["id"].clone())
            .collect()
    };
    assert_eq!(ids(&half), ids(&with));
}

#[test]
fn bad_adapters_exit_1_naming_file_and_tensor() {
    let dir = scratch("lora_bad");
    let run = |lora: &Path| {
        shohin(&[
            "run",
            "-m",
            &s(&tiny()),
            "-p",
            "Hi",
            "-n",
            "1",
            "--lora",
            &s(lora),
        ])
    };
    let other_arch = write(
        &dir,
        "arch.gguf",
        &[
            ("general.architecture", "llama"),
            ("general.type", "adapter"),
            ("adapter.type", "lora"),
        ],
        pair("blk.0.attn_q.weight", 256, 256),
    );
    assert_error(
        &run(&other_arch),
        &["arch.gguf", "general.architecture", "llama"],
    );

    let shape = write(
        &dir,
        "shape.gguf",
        &META,
        pair("blk.0.attn_k.weight", 256, 256),
    );
    assert_error(
        &run(&shape),
        &["shape.gguf", "blk.0.attn_k.weight", "wrong base model"],
    );

    let mut t = pair("blk.0.attn_q.weight", 256, 256);
    t.pop();
    let missing = write(&dir, "missing.gguf", &META, t);
    assert_error(
        &run(&missing),
        &["missing.gguf", "blk.0.attn_q.weight.lora_b"],
    );

    let unknown = write(
        &dir,
        "unknown.gguf",
        &META,
        pair("blk.9.attn_q.weight", 256, 256),
    );
    assert_error(
        &run(&unknown),
        &["unknown.gguf", "blk.9.attn_q.weight", "does not exist"],
    );

    let norm = write(
        &dir,
        "norm.gguf",
        &META,
        pair("blk.0.attn_q_norm.weight", 64, 1),
    );
    assert_error(
        &run(&norm),
        &["norm.gguf", "blk.0.attn_q_norm.weight", "not a matrix"],
    );

    // The model itself is a GGUF but not an adapter.
    assert_error(&run(&tiny()), &["tiny-q1_0.gguf", "general.type"]);
    assert_error(&run(&dir.join("absent.gguf")), &["absent.gguf"]);

    let bad_scale = shohin(&[
        "run",
        "-m",
        &s(&tiny()),
        "-p",
        "Hi",
        "--lora-scaled",
        "x.gguf",
    ]);
    assert_error(&bad_scale, &["--lora-scaled", "FNAME:SCALE"]);
}

#[test]
fn export_lora_writes_llama_cpp_types() {
    let dir = scratch("lora_export");
    let a = good(&dir);
    let out = dir.join("merged.gguf");
    shohin(&[
        "export-lora",
        "-m",
        &s(&tiny()),
        "--lora-scaled",
        &format!("{}:0.5", s(&a)),
        "-o",
        &s(&out),
    ])
    .ok();
    let base = GgufFile::open(&tiny()).unwrap();
    let m = GgufFile::open(&out).unwrap();
    assert_eq!(m.get_u32("general.file_type").unwrap(), 1);
    let names: Vec<&str> = m.tensors().iter().map(|t| t.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        names, sorted,
        "llama-export-lora writes tensors in name order"
    );
    for t in m.tensors() {
        let bt = base.tensor(&t.name).unwrap();
        let merged = t.name == "blk.0.attn_q.weight" || t.name == "blk.1.ffn_down.weight";
        let want = if merged { GgmlType::F16 } else { bt.ggml_type };
        assert_eq!(t.ggml_type, want, "{}", t.name);
        if !merged {
            assert_eq!(m.tensor_data(t), base.tensor_data(bt), "{} copied", t.name);
        }
    }
    // The merged model runs like the base with the adapter at run time.
    let run = |model: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "-m",
            model.to_str().unwrap(),
            "-p",
            "Hello",
            "-n",
            "4",
            "--temp",
            "0",
            "--json",
        ];
        args.extend_from_slice(extra);
        shohin(&args).ok().json()["tokens"].clone()
    };
    let scaled = format!("{}:0.5", s(&a));
    assert_eq!(run(&out, &[]), run(&tiny(), &["--lora-scaled", &scaled]));

    let wrong = write(
        &dir,
        "shape.gguf",
        &META,
        pair("blk.0.attn_k.weight", 256, 256),
    );
    let o = shohin(&[
        "export-lora",
        "-m",
        &s(&tiny()),
        "--lora",
        &s(&wrong),
        "-o",
        &s(&dir.join("x.gguf")),
    ]);
    assert_error(&o, &["shape.gguf", "blk.0.attn_k.weight"]);
}

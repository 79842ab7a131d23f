//! Shared test helpers: fixture paths and golden-file reading.
#![allow(dead_code)]

use serde_json::Value;
use shohin_engine::backend::cpu::CpuBackend;
use shohin_engine::model::Model;
use shohin_gguf::GgufFile;
use std::path::PathBuf;

pub fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
}

/// The real Qwen2.5-Coder-0.5B fixture, fetched (and sha256-checked) by the
/// shared script. A missing fixture fails the test: it is never skipped.
pub fn real_model() -> PathBuf {
    let script = shared().join("fixtures/fetch-real-model.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("run fetch-real-model.sh");
    assert!(
        out.status.success(),
        "fetch-real-model.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(path.trim().lines().last().expect("a path"))
}

pub fn golden(name: &str) -> Value {
    let p = shared().join("fixtures/golden").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

pub fn load(path: &std::path::Path, threads: usize) -> Model {
    let f = GgufFile::open(path).unwrap();
    Model::load(f, Box::new(CpuBackend::new(threads).unwrap())).unwrap()
}

pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in x.iter().enumerate() {
        if *v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// One step of a golden file: (top ids, top logits).
pub fn step(g: &Value, i: usize) -> (Vec<u32>, Vec<f64>) {
    let s = &g["steps"][i];
    let logits = s["top_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    (ids(&s["top_ids"]), logits)
}

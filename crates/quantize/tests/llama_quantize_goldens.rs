//! shohin's quantize against llama-quantize's output on the real fixture:
//! the F16 form (made here with shohin from the Q4_K_M fixture, with
//! requantization) and each target made from it must match the goldens
//! (`tests/data/golden_*.json`, from `gen_goldens.sh` with the peer
//! llama.cpp) tensor by tensor: same type, same sha256 of the bytes. The
//! whole file's sha256 is compared too.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use shohin_gguf::GgufFile;
use shohin_quantize::{quantize_file, Ftype, Options};
use std::path::{Path, PathBuf};

/// Q4_K_S, Q5_K_S and Q5_K_M take Q5_1 for this model's 896-wide rows
/// (llama-quantize's fallback of Q5_K).
const TARGETS: [&str; 12] = [
    "Q8_0", "Q4_0", "Q5_0", "Q1_0", "Q2_0", "TQ1_0", "TQ2_0", "Q4_K_M", "Q6_K", "Q4_K_S", "Q5_K_S",
    "Q5_K_M",
];

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn golden(label: &str) -> Json {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("golden_{label}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Compares `path` with the golden of `label`; returns (identical, total).
fn compare(path: &Path, label: &str) -> (usize, usize) {
    let g = golden(label);
    let f = GgufFile::open(path).unwrap();
    let want = g["tensors"].as_array().unwrap();
    assert_eq!(f.tensors().len(), want.len(), "{label}: tensor count");
    let mut same = 0;
    let mut bad = Vec::new();
    for w in want {
        let name = w["name"].as_str().unwrap();
        let t = f
            .tensor(name)
            .unwrap_or_else(|| panic!("{label}: {name} missing"));
        let sha = hex(Sha256::digest(f.tensor_data(t)));
        if t.ggml_type.name() == w["type"].as_str().unwrap() && sha == w["sha256"].as_str().unwrap()
        {
            same += 1;
        } else {
            bad.push(format!("{name} ({} vs {})", t.ggml_type.name(), w["type"]));
        }
    }
    let file_same = hex(Sha256::digest(f.as_bytes())) == g["file_sha256"].as_str().unwrap();
    println!(
        "{label:>7}: {same}/{} tensors identical to llama-quantize, whole file identical: {file_same}",
        want.len()
    );
    assert!(bad.is_empty(), "{label}: differing tensors: {bad:?}");
    assert!(file_same, "{label}: tensors equal but the file differs");
    (same, want.len())
}

fn run(input: &Path, output: &Path, ty: &str, allow_requantize: bool) {
    let opts = Options {
        ftype: Ftype::parse(ty).unwrap(),
        allow_requantize,
        threads: 0,
    };
    quantize_file(input, output, &opts, |_, _| {}).unwrap();
}

#[test]
fn byte_identical_to_llama_quantize() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quantize-goldens");
    std::fs::create_dir_all(&dir).unwrap();
    let f16 = dir.join("f16.gguf");
    run(&shohin_test_support::real_model(), &f16, "F16", true);
    compare(&f16, "F16");
    let mut total = (0, 0);
    for ty in TARGETS {
        let out = dir.join(format!("{ty}.gguf"));
        run(&f16, &out, ty, false);
        let (s, n) = compare(&out, ty);
        total = (total.0 + s, total.1 + n);
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_file(&f16).unwrap();
    println!("all targets: {}/{} tensors identical", total.0, total.1);
}

//! Helpers of the `prism.hadamard` tests (`hadamard.rs`, the fold's
//! algebra; `hadamard_refusals.rs`, hostile metadata): fold metadata,
//! in-memory GGUF files, and the explicit transform in f64.
#![allow(dead_code)] // each test binary uses a different subset

use shohin_engine::hadamard::{GdnHeads, HadamardFold, FOLDABLE_KINDS};
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};

// ---------------------------------------------------------------- helpers

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
    pub fn sign(&mut self) -> i32 {
        if self.next() & 1 == 0 {
            1
        } else {
            -1
        }
    }
}

/// Explicit normalized Sylvester Walsh–Hadamard entry.
pub fn h(block: usize, r: usize, c: usize) -> f64 {
    let v = 1.0 / (block as f64).sqrt();
    if (r & c).count_ones().is_multiple_of(2) {
        v
    } else {
        -v
    }
}

pub fn strs(v: &[&str]) -> Value {
    Value::Array(
        ValueType::String,
        v.iter().map(|s| Value::String(s.to_string())).collect(),
    )
}

pub fn i32s(v: &[i32]) -> Value {
    Value::Array(ValueType::I32, v.iter().map(|&x| Value::I32(x)).collect())
}

/// A valid explicit-sign block: block 16, sign widths 48, 64, 96 with
/// random signs, the given folded names, token_embd inverse-folded,
/// gdn_v_grouped.
pub fn metadata(names: &[&str], seed: u64) -> Vec<(String, Value)> {
    let mut rng = Rng(seed);
    let widths = [48, 64, 96];
    let values: Vec<i32> = (0..widths.iter().sum::<i32>())
        .map(|_| rng.sign())
        .collect();
    vec![
        (
            "general.architecture".into(),
            Value::String("qwen35".into()),
        ),
        ("prism.hadamard.version".into(), Value::U32(1)),
        ("prism.hadamard.block_size".into(), Value::U32(16)),
        (
            "prism.hadamard.transform".into(),
            Value::String("normalized-sylvester-walsh-hadamard".into()),
        ),
        (
            "prism.hadamard.axis".into(),
            Value::String("input-last-dimension".into()),
        ),
        (
            "prism.hadamard.sign_mode".into(),
            Value::String("explicit".into()),
        ),
        ("prism.hadamard.sign_widths".into(), i32s(&widths)),
        ("prism.hadamard.sign_values".into(), i32s(&values)),
        ("prism.hadamard.weight_names".into(), strs(names)),
        (
            "prism.hadamard.inverse_weight_names".into(),
            strs(&["token_embd.weight"]),
        ),
        ("prism.hadamard.gdn_v_grouped".into(), Value::Bool(true)),
    ]
}

/// n_v 6, n_k 2: ssm_out's input width 48 is 6 heads of 8, rep 3.
pub const GDN: GdnHeads = GdnHeads { n_v: 6, n_k: 2 };

pub fn set(meta: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match meta.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => meta.push((key.to_string(), v)),
    }
}

pub fn unset(meta: &mut Vec<(String, Value)>, key: &str) {
    meta.retain(|(k, _)| k != key);
}

/// A GGUF with this metadata and F32 tensors of these (name, input width)
/// and two rows each.
pub fn gguf(meta: Vec<(String, Value)>, tensors: &[(&str, u64)]) -> GgufFile {
    let mut w = GgufWriter::new(meta);
    for &(name, width) in tensors {
        w.add_tensor(
            name,
            vec![width, 2],
            GgmlType::F32,
            vec![0u8; width as usize * 2 * 4],
        );
    }
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    GgufFile::from_bytes(bytes).unwrap()
}

pub fn parse(meta: Vec<(String, Value)>) -> Result<Option<HadamardFold>, String> {
    HadamardFold::from_metadata(&gguf(meta, &[]), Some(GDN)).map_err(|e| e.to_string())
}

#[track_caller]
pub fn refused(meta: Vec<(String, Value)>, key: &str, phrase: &str) {
    match parse(meta) {
        Ok(_) => panic!("accepted; wanted a refusal naming {key} ({phrase})"),
        Err(e) => assert!(
            e.contains(key) && e.contains(phrase),
            "error `{e}` should name `{key}` and say `{phrase}`"
        ),
    }
}

/// The input width of each weight kind in the test model.
pub fn width_of(name: &str) -> u64 {
    if name.contains("ssm_out") {
        48
    } else if name.contains("ffn_down") {
        96
    } else {
        64
    }
}

pub fn all_kind_names() -> Vec<String> {
    let mut v: Vec<String> = FOLDABLE_KINDS
        .iter()
        .map(|k| format!("blk.3.{k}.weight"))
        .collect();
    v.push("output.weight".into());
    v
}

// ------------------------------------------------------------- transform

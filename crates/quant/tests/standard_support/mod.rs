//! Shared helpers of the `standard_*` tests: the committed known-answer
//! files (tests/data/standard/, written by tests/data/gen_standard.py from
//! gguf-py and ggml) and a small deterministic PRNG.
#![allow(dead_code)] // each test binary uses a different subset

use shohin_quant::simd::{supported, Isa};
use shohin_quant::GgmlType;

/// The formats these tests cover, with the name of their data file.
pub const STANDARD: [(GgmlType, &str); 13] = [
    (GgmlType::F32, "f32"),
    (GgmlType::F16, "f16"),
    (GgmlType::BF16, "bf16"),
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q5_0, "q5_0"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Q8K, "q8_k"),
    (GgmlType::Q4K, "q4_k"),
    (GgmlType::Q5K, "q5_k"),
    (GgmlType::Q6K, "q6_k"),
    (GgmlType::Q5_1, "q5_1"),
    (GgmlType::Q8_1, "q8_1"),
    (GgmlType::Q4_1, "q4_1"),
];

pub fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() & 1 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// f32 values from their little-endian bytes.
pub fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One known-answer file.
pub fn load(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/tests/data/standard/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The cases of section `key` (`dequantize`, `quantize`, `vec_dot`).
pub fn cases<'a>(doc: &'a serde_json::Value, key: &str) -> &'a [serde_json::Value] {
    doc[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub fn field(case: &serde_json::Value, key: &str) -> Vec<u8> {
    hex(case[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing {key}")))
}

/// SplitMix64: tiny, deterministic, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Roughly normal(0, 1) (sum of 4 uniforms, rescaled).
    pub fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.unit()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The SIMD levels to check (empty on a CPU without AVX2: the scalar
/// kernels are then the only ones, covered by the other test files).
pub fn levels() -> Vec<Isa> {
    let l: Vec<Isa> = [Isa::Neon, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&l| supported(l))
        .collect();
    if l.is_empty() {
        eprintln!("no SIMD level detected: nothing to compare");
    }
    l
}

/// Random floats: normal values times a per-block scale over many
/// magnitudes, with occasional outliers and exact zeros.
pub fn floats(n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = Vec::with_capacity(n);
    while x.len() < n {
        let scale = 10f64.powf(rng.uniform(-4.0, 3.0));
        for _ in 0..32.min(n - x.len()) {
            let u = rng.unit();
            let v = if u < 0.02 {
                0.0
            } else if u < 0.05 {
                rng.normal() * 30.0
            } else {
                rng.normal()
            };
            x.push((v * scale) as f32);
        }
    }
    x
}

//! Shared test helpers: a raw byte builder for malformed files (independent
//! of the crate's writer) and a small valid file exercising every value type.
#![allow(dead_code)]

use shohin_gguf::{GgmlType, GgufWriter, Value, ValueType};

/// Appends GGUF fields byte by byte (gguf.md layout, little-endian).
#[derive(Clone, Default)]
pub struct Raw(pub Vec<u8>);

impl Raw {
    /// Magic, version, tensor count, metadata count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        Raw(b"GGUF".to_vec()).u32(version).u64(n_tensors).u64(n_kv)
    }
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A gguf string: u64 length then the bytes.
    pub fn string(self, s: &[u8]) -> Self {
        self.u64(s.len() as u64).bytes(s)
    }
    /// Key and value type tag; the payload follows.
    pub fn kv(self, key: &str, ty: u32) -> Self {
        self.string(key.as_bytes()).u32(ty)
    }
    pub fn kv_u32(self, key: &str, v: u32) -> Self {
        self.kv(key, 4).u32(v)
    }
    /// A tensor info: name, n_dims, dims, type id, offset.
    pub fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut s = self.string(name.as_bytes()).u32(dims.len() as u32);
        for &d in dims {
            s = s.u64(d);
        }
        s.u32(ty).u64(offset)
    }
    /// Zero bytes up to a multiple of `align`.
    pub fn pad(mut self, align: usize) -> Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    pub fn zeros(mut self, n: usize) -> Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Metadata of every value type, including an array of arrays.
pub fn every_value_type() -> Vec<(String, Value)> {
    let s = |x: &str| Value::String(x.to_owned());
    vec![
        ("general.architecture".into(), s("llama")),
        ("general.alignment".into(), Value::U32(64)),
        ("t.u8".into(), Value::U8(200)),
        ("t.i8".into(), Value::I8(-100)),
        ("t.u16".into(), Value::U16(60000)),
        ("t.i16".into(), Value::I16(-30000)),
        ("t.u32".into(), Value::U32(4_000_000_000)),
        ("t.i32".into(), Value::I32(-2_000_000_000)),
        ("t.f32".into(), Value::F32(1e-6)),
        ("t.bool".into(), Value::Bool(true)),
        ("t.u64".into(), Value::U64(u64::MAX)),
        ("t.i64".into(), Value::I64(i64::MIN)),
        ("t.f64".into(), Value::F64(-2.5e300)),
        ("t.str".into(), s("héllo ✓")),
        (
            "t.tokens".into(),
            Value::Array(ValueType::String, vec![s("a"), s(""), s("Ġthe")]),
        ),
        (
            "t.nested".into(),
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(-2)]),
                    Value::Array(ValueType::I32, vec![]),
                ],
            ),
        ),
        ("t.empty".into(), Value::Array(ValueType::F32, vec![])),
    ]
}

/// A small valid v3 file: every value type, alignment 64, a Q8_0 tensor
/// (68 bytes, padded to 128) and an F32 tensor of 64 bytes that ends the
/// file exactly, so that every proper prefix is invalid.
pub fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new(every_value_type());
    w.add_tensor("blk.0.w", vec![32, 2], GgmlType::Q8_0, noise(1, 68));
    w.add_tensor("blk.0.b", vec![16], GgmlType::F32, noise(2, 64));
    let mut out = Vec::new();
    w.write_to(&mut out).expect("valid file");
    out
}

//! SCAFFOLD API (the gguf helper replaces the bodies and splits files).
//! GGUF v3 reader and writer. Spec: ggml/docs/gguf.md.

use std::path::Path;

pub use shohin_quant::GgmlType;

/// Metadata value types, with their GGUF ids (gguf.md `gguf_metadata_value_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
    String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8), I8(i8), U16(u16), I16(i16), U32(u32), I32(i32), F32(f32), Bool(bool),
    String(String),
    /// Element type kept so empty arrays and nested arrays round-trip.
    Array(ValueType, Vec<Value>),
    U64(u64), I64(i64), F64(f64),
}

/// One tensor's descriptor. `offset` is relative to the start of the data
/// section; `n_bytes` = f(ggml_type, dims), checked to lie inside the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the row length (contiguous).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{0}")]
    Scaffold(String),
}

/// A parsed, validated GGUF file whose tensor data stays memory-mapped.
#[derive(Debug)]
pub struct GgufFile {}

impl GgufFile {
    /// Open and validate; the file is memory-mapped, not read.
    pub fn open(_path: &Path) -> Result<Self, GgufError> { unimplemented!() }
    /// Parse and validate an in-memory image (tests, fuzzing).
    pub fn from_bytes(_bytes: Vec<u8>) -> Result<Self, GgufError> { unimplemented!() }
    pub fn version(&self) -> u32 { unimplemented!() }
    pub fn alignment(&self) -> u64 { unimplemented!() }
    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] { unimplemented!() }
    pub fn get(&self, _key: &str) -> Option<&Value> { unimplemented!() }
    /// Typed getters: Err(MissingKey) / Err(WrongType{key, expected, found}).
    pub fn get_u32(&self, _key: &str) -> Result<u32, GgufError> { unimplemented!() }
    pub fn get_u64(&self, _key: &str) -> Result<u64, GgufError> { unimplemented!() }
    pub fn get_f32(&self, _key: &str) -> Result<f32, GgufError> { unimplemented!() }
    pub fn get_str(&self, _key: &str) -> Result<&str, GgufError> { unimplemented!() }
    pub fn get_array(&self, _key: &str) -> Result<&[Value], GgufError> { unimplemented!() }
    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] { unimplemented!() }
    pub fn tensor(&self, _name: &str) -> Option<&TensorInfo> { unimplemented!() }
    /// The tensor's bytes (exactly `n_bytes`), zero-copy from the map.
    pub fn tensor_data(&self, _t: &TensorInfo) -> &[u8] { unimplemented!() }
    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 { unimplemented!() }
}

//! Everything that can be wrong with a GGUF file, a metadata lookup or a
//! file to be written. Every variant names the field, key or tensor at fault.

use std::path::PathBuf;

use shohin_quant::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
    #[error("file truncated while reading {what} at offset {offset}: need {need} bytes, {available} left")]
    Truncated {
        what: String,
        offset: u64,
        need: u64,
        available: u64,
    },
    #[error("bad magic {0:02x?}: not a GGUF file (expected \"GGUF\")")]
    BadMagic([u8; 4]),
    #[error(
        "unsupported GGUF version {0} (only 2 and 3 are; a byte-swapped 3 means a big-endian file)"
    )]
    UnsupportedVersion(u32),
    #[error("tensor count {count} cannot fit in the {remaining} bytes left in the file")]
    TooManyTensors { count: u64, remaining: u64 },
    #[error("metadata count {count} cannot fit in the {remaining} bytes left in the file")]
    TooManyKeys { count: u64, remaining: u64 },
    #[error("{what} at offset {offset}: string length {len} exceeds the {remaining} bytes left in the file")]
    StringTooLong {
        what: String,
        offset: u64,
        len: u64,
        remaining: u64,
    },
    #[error("key '{key}': array of {len} {elem} at offset {offset} cannot fit in the {remaining} bytes left in the file")]
    ArrayTooLong {
        key: String,
        elem: crate::ValueType,
        offset: u64,
        len: u64,
        remaining: u64,
    },
    #[error("key '{key}': arrays nested deeper than {max} levels")]
    NestingTooDeep { key: String, max: usize },
    #[error("key '{key}': unknown metadata value type id {id} at offset {offset}")]
    UnknownValueType { key: String, id: u32, offset: u64 },
    #[error("key '{key}': bool byte {byte} at offset {offset} is neither 0 nor 1")]
    InvalidBool { key: String, byte: u8, offset: u64 },
    #[error("metadata key #{index} at offset {offset} is not valid UTF-8 (lossy: {lossy:?})")]
    InvalidUtf8Key {
        index: u64,
        offset: u64,
        lossy: String,
    },
    #[error("key '{key}': string value at offset {offset} is not valid UTF-8")]
    InvalidUtf8Value { key: String, offset: u64 },
    #[error("tensor #{index}: name at offset {offset} is not valid UTF-8 (lossy: {lossy:?})")]
    InvalidUtf8TensorName {
        index: u64,
        offset: u64,
        lossy: String,
    },
    #[error("metadata key #{index} is empty")]
    EmptyKey { index: u64 },
    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),
    #[error("general.alignment = {0} is not a non-zero power of two")]
    BadAlignment(u64),
    #[error("key '{0}' not found")]
    MissingKey(String),
    #[error("key '{key}': expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("key '{key}': value {value} does not fit {target}")]
    OutOfRange {
        key: String,
        value: String,
        target: &'static str,
    },
    #[error("duplicate tensor name '{0}'")]
    DuplicateTensor(String),
    #[error("tensor '{tensor}': {n_dims} dimensions, must be 1..=4 (GGML_MAX_DIMS)")]
    BadDimCount { tensor: String, n_dims: u64 },
    #[error("tensor '{tensor}': dimension {axis} is zero")]
    ZeroDim { tensor: String, axis: usize },
    #[error("tensor '{tensor}': shape {dims:?} has more than i64::MAX elements or bytes")]
    DimsOverflow { tensor: String, dims: Vec<u64> },
    #[error("tensor '{tensor}': unknown or unsupported ggml type id {id}")]
    UnknownType { tensor: String, id: u32 },
    #[error(
        "tensor '{tensor}': row length {row} is not a multiple of the {ty} block size {block}"
    )]
    RowNotBlockMultiple {
        tensor: String,
        ty: GgmlType,
        row: u64,
        block: u64,
    },
    #[error("tensor '{tensor}': offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor '{tensor}': offset {offset} is past the end of the {data_len}-byte data section"
    )]
    OffsetPastEnd {
        tensor: String,
        offset: u64,
        data_len: u64,
    },
    #[error("tensor '{tensor}' at offset {offset} needs {need} bytes but the data section has only {available} left")]
    TensorPastEnd {
        tensor: String,
        offset: u64,
        need: u64,
        available: u64,
    },
    #[error("tensor '{tensor}' at offset {offset} needs {need} bytes and overlaps tensor '{other}' at offset {other_offset}")]
    Overlap {
        tensor: String,
        offset: u64,
        need: u64,
        other: String,
        other_offset: u64,
    },
    #[error("tensor '{tensor}': {got} data bytes given, its type and shape need {need}")]
    DataLength { tensor: String, need: u64, got: u64 },
    #[error("key '{key}': array declared of {declared} holds a {found}")]
    MixedArray {
        key: String,
        declared: crate::ValueType,
        found: String,
    },
    #[error("tensor '{tensor}': a Q2_0_g128 tensor of this size would be read back as g64 Q2_0 (type id 42 is told apart by size)")]
    AmbiguousQ2_0 { tensor: String },
}

//! GGUF v3 reader and writer (v2 is also read; v1 and others are rejected).
//!
//! Format: ggml's `docs/gguf.md` (llama.cpp tree); reference reader/writer:
//! `ggml/src/gguf.cpp` and gguf-py's `gguf_reader.py` / `gguf_writer.py`.
//! The reader memory-maps the file, validates every count, offset and size
//! with checked arithmetic before allocating, and hands out tensor bytes
//! without copying. The writer produces the canonical layout (tensors in
//! order, each at the padded end of the previous one), so files written by
//! gguf.cpp / gguf-py round-trip byte for byte.

mod cursor;
mod error;
mod file;
mod metadata;
mod tensor;
mod value;
mod writer;

pub use error::GgufError;
pub use file::{GgufFile, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION};
pub use metadata::MAX_ARRAY_DEPTH;
pub use shohin_quant::GgmlType;
pub use tensor::{TensorInfo, MAX_DIMS};
pub use value::{Value, ValueType, ALL_VALUE_TYPES};
pub use writer::{GgufWriter, TensorToWrite};

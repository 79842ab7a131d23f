//! Byte-level BPE tokenizer matching llama.cpp for GGUF vocabularies with
//! `tokenizer.ggml.model = "gpt2"` and `tokenizer.ggml.pre = "qwen2"`
//! (Qwen2, Qwen2.5, Qwen3); the GPT-2 pre-tokenizer (`"gpt-2"`) is also
//! supported.
//!
//! Pipeline (llama.cpp src/llama-vocab.cpp, src/unicode.cpp):
//! 1. special tokens are cut out of the text, longest first
//!    (`tokenizer_st_partition`);
//! 2. the rest is split into words by the pre-tokenizer
//!    (`unicode_regex_split_custom_qwen2`), see [`PreTokenizer`];
//! 3. each word's bytes are spelled in the GPT-2 byte alphabet and merged by
//!    merge rank (`llm_tokenizer_bpe_session`).
//!
//! The engine builds a [`VocabData`] from GGUF metadata and calls
//! [`Tokenizer::new`], which validates it.

mod bpe;
mod byte_level;
mod decode;
mod encode;
mod error;
mod fxhash;
mod pretok;
mod special;
mod unicode;
mod unicode_table;
mod vocab;

pub use decode::StreamDecoder;
pub use error::TokenizerError;
pub use pretok::PreTokenizer;
pub use vocab::{token_type, Tokenizer, VocabData};

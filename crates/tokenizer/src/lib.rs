//! Tokenizers matching llama.cpp for GGUF vocabularies:
//!
//! * `tokenizer.ggml.model = "gpt2"`: byte-level BPE with the pre-tokenizers
//!   `qwen2` (Qwen2, Qwen2.5, Qwen3), `llama3` / `llama-bpe` (Llama 3.x) and
//!   `gpt-2`, plus the names llama.cpp maps to them;
//! * `tokenizer.ggml.model = "llama"`: SentencePiece (Llama 1/2, Mistral
//!   v0.1, TinyLlama, ...) with scores, byte fallback and `add_space_prefix`.
//!
//! Pipeline (llama.cpp src/llama-vocab.cpp, src/unicode.cpp):
//! 1. special tokens are cut out of the text, longest first
//!    (`tokenizer_st_partition`);
//! 2. BPE: the rest is split into words by the pre-tokenizer (unicode.cpp's
//!    custom splitters), see [`PreTokenizer`]; each word's bytes are spelled
//!    in the GPT-2 byte alphabet and merged by merge rank
//!    (`llm_tokenizer_bpe_session`);
//! 3. SentencePiece: each text fragment gets its space prefix, spaces become
//!    U+2581, and characters are merged by token score
//!    (`llm_tokenizer_spm_session`), unknown characters as `<0xXX>` bytes.
//!
//! A model loader fills a [`GgufVocab`] from the `tokenizer.ggml.*` keys and
//! calls [`Tokenizer::from_gguf_vocab`], which applies llama.cpp's defaults
//! and validates it ([`VocabData`] + [`Tokenizer::new`] is the older
//! BPE-only form).

mod bpe;
mod build;
mod byte_level;
mod decode;
mod encode;
mod error;
mod fxhash;
mod pretok;
mod special;
mod spm;
mod unicode;
mod unicode_table;
mod vocab;

pub use decode::StreamDecoder;
pub use error::TokenizerError;
pub use pretok::PreTokenizer;
pub use vocab::{token_type, GgufVocab, Tokenizer, TokenizerModel, VocabData};

//! Vocabulary data and the [`Tokenizer`] it becomes.
//!
//! [`GgufVocab`] holds the `tokenizer.ggml.*` metadata as read from a GGUF
//! file, absent keys as `None`, so that llama.cpp's per-model defaults
//! (llama-vocab.cpp `llama_vocab::impl::load`) are applied here, in one
//! place; [`VocabData`] is the older, BPE-only form with defaults already
//! resolved by the caller. Building and validation live in `build.rs`.

use std::collections::HashMap;

use crate::bpe::MergeMap;
use crate::fxhash::FxBuildHasher;
use crate::pretok::PreTokenizer;

/// Token text → id.
pub(crate) type TextMap = HashMap<String, u32, FxBuildHasher>;

/// Plain byte-level BPE vocabulary data (`tokenizer.ggml.model = "gpt2"`),
/// with `add_bos`/`add_eos` already resolved by the caller. For other
/// tokenizer models, and to get llama.cpp's defaults, use [`GgufVocab`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VocabData {
    /// `tokenizer.ggml.tokens`: token texts in byte-level spelling; index = id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (see [`token_type`]); empty = all NORMAL.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: `"LEFT RIGHT"` lines, rank = index.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.pre`, e.g. `"qwen2"`.
    pub pre: String,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`; when absent it is auto-detected by text
    /// as llama.cpp does (e.g. `<|im_end|>`).
    pub eot: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (llama.cpp's default for gpt2/qwen2 is false).
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token` (default false).
    pub add_eos: bool,
}

/// The `tokenizer.ggml.*` metadata of a GGUF file, one field per key; `None`
/// or an empty list where the key is absent. [`crate::Tokenizer::from_gguf_vocab`]
/// fills in llama.cpp's defaults for the tokenizer model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `"gpt2"` (byte-level BPE) or `"llama"`
    /// (SentencePiece); anything else is [`crate::TokenizerError::UnsupportedModel`].
    pub model: String,
    /// `tokenizer.ggml.pre`; used by BPE only (absent reads as `"default"`,
    /// which is not supported). SentencePiece ignores it, as llama.cpp does.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`; index = id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (an int32 array converted to f32); empty =
    /// all 0. SentencePiece merges by score.
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type` (see [`token_type`]); empty = all NORMAL.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges` (BPE only).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id` (SentencePiece default: 1).
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id` (SentencePiece default: 2).
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id` (auto-detected by text when absent).
    pub eot: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id` (SentencePiece default: 0).
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (default: true for SentencePiece and
    /// the llama3 pre-tokenizer, false for other BPE).
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token` (default false).
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (default: true for SentencePiece,
    /// false for BPE).
    pub add_space_prefix: Option<bool>,
}

impl From<VocabData> for GgufVocab {
    fn from(v: VocabData) -> Self {
        GgufVocab {
            model: "gpt2".into(),
            pre: Some(v.pre),
            tokens: v.tokens,
            scores: Vec::new(),
            token_types: v.token_types,
            merges: v.merges,
            bos: v.bos,
            eos: v.eos,
            eot: v.eot,
            unk: None,
            pad: v.pad,
            add_bos: Some(v.add_bos),
            add_eos: Some(v.add_eos),
            add_space_prefix: None,
        }
    }
}

/// Which tokenization algorithm a vocabulary uses (`tokenizer.ggml.model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerModel {
    /// `"gpt2"`: byte-level BPE (llama.cpp `LLAMA_VOCAB_TYPE_BPE`).
    Bpe,
    /// `"llama"`: SentencePiece with byte fallback (llama.cpp `LLAMA_VOCAB_TYPE_SPM`).
    Spm,
}

/// Token type values of `tokenizer.ggml.token_type` (llama.h `llama_token_type`).
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Token attribute bits (llama.h `llama_token_attr`).
pub(crate) mod attr {
    pub const UNKNOWN: u8 = 1 << 0;
    pub const UNUSED: u8 = 1 << 1;
    pub const NORMAL: u8 = 1 << 2;
    pub const CONTROL: u8 = 1 << 3;
    pub const USER_DEFINED: u8 = 1 << 4;
    pub const BYTE: u8 = 1 << 5;
}

/// llama-vocab.cpp: the token-type → attribute switch (unknown values → UNDEFINED = 0).
pub(crate) fn attr_of_type(t: i32) -> u8 {
    match t {
        token_type::UNKNOWN => attr::UNKNOWN,
        token_type::UNUSED => attr::UNUSED,
        token_type::NORMAL => attr::NORMAL,
        token_type::CONTROL => attr::CONTROL,
        token_type::USER_DEFINED => attr::USER_DEFINED,
        token_type::BYTE => attr::BYTE,
        _ => 0,
    }
}

/// A tokenizer equivalent to llama.cpp's for byte-level BPE (`gpt2`) and
/// SentencePiece (`llama`) vocabularies.
pub struct Tokenizer {
    pub(crate) model: TokenizerModel,
    pub(crate) texts: Vec<String>,
    pub(crate) attrs: Vec<u8>,
    pub(crate) text_to_id: TextMap,
    /// Token of each byte: BPE, its byte-level character; SentencePiece, its
    /// `<0xXX>` byte-fallback token. [`crate::bpe::NO_TOKEN`] where there is none.
    pub(crate) byte_token: [u32; 256],
    /// BPE merge ranks (empty for SentencePiece).
    pub(crate) merges: MergeMap,
    /// SentencePiece scores by id (empty for BPE).
    pub(crate) scores: Vec<f32>,
    /// Token → bytes with special tokens rendered (llama.cpp `cache_token_to_piece`).
    pub(crate) pieces: Vec<Box<[u8]>>,
    /// Ids matched in raw text before BPE, longest text first (`cache_special_tokens`).
    pub(crate) special_sorted: Vec<u32>,
    /// BPE pre-tokenizer (`None` for SentencePiece).
    pub(crate) pre: Option<PreTokenizer>,
    /// llama.cpp `ignore_merges` (llama3): whole-word tokens skip merging.
    pub(crate) ignore_merges: bool,
    /// llama.cpp `clean_spaces`, applied when detokenizing.
    pub(crate) clean_spaces: bool,
    /// llama.cpp `add_space_prefix`: SentencePiece prepends a space to text
    /// at the start and after special tokens; detokenizing strips one
    /// leading space of the first token.
    pub(crate) add_space_prefix: bool,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) eot: Option<u32>,
    pub(crate) unk: Option<u32>,
    pub(crate) pad: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    /// Sorted end-of-generation ids.
    pub(crate) eog: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model)
            .field("n_vocab", &self.texts.len())
            .field("n_merges", &self.merges.len())
            .field("pre", &self.pre)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.texts.len()
    }
    /// Beginning-of-sequence id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// End-of-turn id (given, or auto-detected by text like llama.cpp).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    /// Padding id.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// The BPE pre-tokenizer in use (`None` for SentencePiece).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        self.pre
    }
    /// The tokenization algorithm.
    pub fn model(&self) -> TokenizerModel {
        self.model
    }
    /// Unknown-token id (SentencePiece: `<unk>`, default 0).
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    /// Whether SentencePiece prepends a space to the text (llama.cpp
    /// `add_space_prefix`); decoding then strips it from the first token.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// Whether generation should stop at `id` (llama.cpp `llama_vocab_is_eog`):
    /// eos, eot, and tokens such as `<|im_end|>`, `<|endoftext|>`, `<|fim_pad|>`,
    /// `<|repo_name|>`, `<|file_sep|>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// Whether `id` is a CONTROL token (e.g. `<|im_start|>`), which llama.cpp
    /// renders only when asked to render special tokens.
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & attr::CONTROL != 0)
    }

    /// Id of the token whose text (as stored in the vocabulary) is `s`.
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.text_to_id.get(s).copied()
    }

    /// The token's text as stored in the vocabulary (BPE: byte-level
    /// spelling; SentencePiece: spaces as U+2581).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }
}

/// `<0xXX>` → byte (llama-vocab.cpp `token_to_byte`).
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

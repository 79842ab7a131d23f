//! Errors of vocabulary validation and of decoding.

/// Everything that can go wrong building a [`crate::Tokenizer`] or decoding ids.
///
/// Encoding never fails: any `&str` tokenizes (bytes without a token are
/// dropped, as llama.cpp does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizerError {
    /// `tokenizer.ggml.tokens` is empty.
    #[error("vocabulary is empty (tokenizer.ggml.tokens has no entries)")]
    EmptyVocab,

    /// More tokens than a `u32` id (llama.cpp: `int32_t llama_token`) can name.
    #[error("vocabulary has {0} tokens, more than a 31-bit token id can address")]
    TooManyTokens(usize),

    /// `tokenizer.ggml.token_type` is non-empty but shorter than the token list
    /// (llama-vocab.cpp rejects this too: "Index out of array bounds for toktypes").
    #[error("tokenizer.ggml.token_type has {n_types} entries but there are {n_tokens} tokens")]
    TokenTypesTooShort { n_types: usize, n_tokens: usize },

    /// The same text appears twice in the vocabulary. llama.cpp aborts on this
    /// (`GGML_ASSERT(id_to_token.size() == token_to_id.size())` in llama-vocab.cpp).
    #[error("duplicate token {text:?}: ids {first} and {second}")]
    DuplicateToken {
        text: String,
        first: u32,
        second: u32,
    },

    /// A merge line that is not `LEFT RIGHT` (one space after a non-empty left part).
    #[error("malformed merge #{index} {line:?}: expected \"LEFT RIGHT\"")]
    MalformedMerge { index: usize, line: String },

    /// A merge names a left or right part that is not a token.
    #[error("merge #{index} {line:?} names unknown token {token:?}")]
    MergeUnknownToken {
        index: usize,
        line: String,
        token: String,
    },

    /// A merge whose concatenation is not a token (HF tokenizers rejects this too).
    #[error("merge #{index} {line:?} produces {result:?}, which is not a token")]
    MergeResultUnknown {
        index: usize,
        line: String,
        result: String,
    },

    /// A special token id (`which` = "bos", "eos", "eot", "pad") outside the vocabulary.
    #[error("special token {which} id {id} is out of range (n_vocab = {n_vocab})")]
    SpecialIdOutOfRange {
        which: &'static str,
        id: u32,
        n_vocab: usize,
    },

    /// `add_bos`/`add_eos` is set but the matching id is absent.
    #[error("add_{which} is set but the vocabulary has no {which} token id")]
    MissingSpecialForAdd { which: &'static str },

    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not implement
    /// (an absent key reads as `"default"`, as in llama.cpp).
    #[error(
        "unsupported pre-tokenizer: tokenizer.ggml.pre = {0:?} (supported: qwen2, \
         llama3 / llama-bpe / llama-v3, gpt-2, and the names llama.cpp maps to them)"
    )]
    UnknownPreTokenizer(String),

    /// `tokenizer.ggml.model` names a tokenizer this crate does not implement
    /// (e.g. "t5", "bert", "rwkv").
    #[error(
        "unsupported tokenizer model: tokenizer.ggml.model = {0:?} (supported: \
         \"gpt2\" byte-level BPE, \"llama\" SentencePiece)"
    )]
    UnsupportedModel(String),

    /// `tokenizer.ggml.scores` is non-empty but shorter than the token list
    /// (llama-vocab.cpp: "Index out of array bounds for scores").
    #[error("tokenizer.ggml.scores has {n_scores} entries but there are {n_tokens} tokens")]
    ScoresTooShort { n_scores: usize, n_tokens: usize },

    /// A BYTE-type token (type 6) whose text is not `<0xXX>`.
    #[error("token {id} {text:?} has type BYTE but is not of the form <0xXX>")]
    BadByteToken { id: u32, text: String },

    /// `decode`/`token_bytes` was given an id outside `0..n_vocab`.
    #[error("token id {id} is out of vocabulary (n_vocab = {n_vocab})")]
    IdOutOfVocab { id: u32, n_vocab: usize },
}

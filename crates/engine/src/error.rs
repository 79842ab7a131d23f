//! The engine's single error type: every variant says what and where.

use shohin_quant::GgmlType;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Gguf(#[from] shohin_gguf::GgufError),
    #[error("tokenizer")]
    Tokenizer(#[from] shohin_tokenizer::TokenizerError),
    #[error("chat template")]
    Chat(#[from] shohin_chat::ChatError),
    #[error("unsupported architecture `{0}` (supported: qwen2, qwen3, qwen35)")]
    UnsupportedArch(String),
    #[error("bad hyperparameter {key}: {why}")]
    BadHparam { key: String, why: String },
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}`: shape {got:?}, expected {want:?}")]
    BadShape {
        name: String,
        got: Vec<u64>,
        want: Vec<u64>,
    },
    #[error("tensor `{name}`: type {ty} is not allowed here ({why})")]
    BadTensorType {
        name: String,
        ty: GgmlType,
        why: &'static str,
    },
    #[error("backend {backend} cannot run tensor `{name}` of type {ty}")]
    BackendUnsupported {
        backend: &'static str,
        name: String,
        ty: GgmlType,
    },
    #[error("token id {id} is out of the vocabulary (size {n_vocab})")]
    TokenOutOfVocab { id: u32, n_vocab: usize },
    #[error("the prompt has {n_prompt} tokens but the context holds {n_ctx} (raise --ctx-size)")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    #[error("the context is full ({n_ctx} tokens)")]
    ContextFull { n_ctx: usize },
    #[error("--ctx-size {got} is invalid: {why}")]
    BadCtxSize { got: usize, why: String },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{0}")]
    ThreadPool(String),
    /// A LoRA adapter file that cannot apply to this model (lora.rs).
    #[error("LoRA adapter {file}: {why}")]
    Lora { file: String, why: String },
    #[error("{0}")]
    BadCacheType(String),
    /// Context shift asked of a model or cache that cannot drop tokens.
    #[error("{0}")]
    NoContextShift(String),
    /// Speculative decoding asked of a model, cache or draft that cannot
    /// do it (crate::speculative).
    #[error("speculative decoding: {0}")]
    Speculative(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

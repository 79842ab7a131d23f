//! Tokenizer and chat template from GGUF metadata (`tokenizer.*` keys, as
//! llama.cpp's `llama_vocab::impl::load` reads them).

use crate::error::{EngineError, Result};
use shohin_chat::ChatTemplate;
use shohin_gguf::{GgufFile, Value};
use shohin_tokenizer::{GgufVocab, Tokenizer};

fn bad(key: &str, why: impl Into<String>) -> EngineError {
    EngineError::BadHparam {
        key: key.to_string(),
        why: why.into(),
    }
}

fn strings(f: &GgufFile, key: &str) -> Result<Vec<String>> {
    f.get_array(key)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(bad(key, format!("element {i} is not a string"))),
        })
        .collect()
}

fn opt_id(f: &GgufFile, key: &str) -> Result<Option<u32>> {
    match f.get(key) {
        None => Ok(None),
        Some(_) => Ok(Some(f.get_u32(key)?)),
    }
}

fn opt_bool(f: &GgufFile, key: &str) -> Result<Option<bool>> {
    match f.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(key, "not a bool")),
    }
}

/// An optional array of `key`, each element through `item` (empty when the
/// key is absent).
fn opt_array<T>(
    f: &GgufFile,
    key: &str,
    item: impl Fn(&Value) -> Option<T>,
    want: &str,
) -> Result<Vec<T>> {
    match f.get(key) {
        None => Ok(Vec::new()),
        Some(_) => f
            .get_array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| item(v).ok_or_else(|| bad(key, format!("element {i} is not {want}"))))
            .collect(),
    }
}

/// Build the tokenizer: byte-level BPE (`tokenizer.ggml.model = gpt2`) or
/// SentencePiece (`llama`); anything else is an error naming the model.
/// Absent keys stay `None`: the tokenizer crate applies llama.cpp's
/// per-model defaults (SentencePiece adds BOS and a space prefix).
pub fn load_tokenizer(f: &GgufFile) -> Result<Tokenizer> {
    let token_types = opt_array(
        f,
        "tokenizer.ggml.token_type",
        |v| match v {
            Value::I32(t) => Some(*t),
            Value::U32(t) => i32::try_from(*t).ok(),
            _ => None,
        },
        "a 32-bit integer",
    )?;
    let scores = opt_array(
        f,
        "tokenizer.ggml.scores",
        |v| match v {
            Value::F32(s) => Some(*s),
            Value::I32(s) => Some(*s as f32),
            _ => None,
        },
        "a number",
    )?;
    let merges = match f.get("tokenizer.ggml.merges") {
        None => Vec::new(),
        Some(_) => strings(f, "tokenizer.ggml.merges")?,
    };
    let data = GgufVocab {
        model: f.get_str("tokenizer.ggml.model")?.to_string(),
        pre: match f.get("tokenizer.ggml.pre") {
            Some(_) => Some(f.get_str("tokenizer.ggml.pre")?.to_string()),
            None => None,
        },
        tokens: strings(f, "tokenizer.ggml.tokens")?,
        scores,
        token_types,
        merges,
        bos: opt_id(f, "tokenizer.ggml.bos_token_id")?,
        eos: opt_id(f, "tokenizer.ggml.eos_token_id")?,
        eot: opt_id(f, "tokenizer.ggml.eot_token_id")?,
        unk: opt_id(f, "tokenizer.ggml.unknown_token_id")?,
        pad: opt_id(f, "tokenizer.ggml.padding_token_id")?,
        add_bos: opt_bool(f, "tokenizer.ggml.add_bos_token")?,
        add_eos: opt_bool(f, "tokenizer.ggml.add_eos_token")?,
        add_space_prefix: opt_bool(f, "tokenizer.ggml.add_space_prefix")?,
    };
    Ok(Tokenizer::from_gguf_vocab(data)?)
}

/// The file's chat template, or `None` when it has none.
pub fn load_chat_template(f: &GgufFile) -> Result<Option<ChatTemplate>> {
    match f.get("tokenizer.chat_template") {
        None => Ok(None),
        Some(_) => Ok(Some(ChatTemplate::new(
            f.get_str("tokenizer.chat_template")?,
        )?)),
    }
}

//! Tokenizer and chat template from GGUF metadata (`tokenizer.*` keys, as
//! llama.cpp's `llama_vocab::impl::load` reads them).

use crate::error::{EngineError, Result};
use shohin_chat::ChatTemplate;
use shohin_gguf::{GgufFile, Value};
use shohin_tokenizer::{Tokenizer, VocabData};

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

fn opt_bool(f: &GgufFile, key: &str, default: bool) -> Result<bool> {
    match f.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(key, "not a bool")),
    }
}

/// Build the tokenizer. Only byte-level BPE (`tokenizer.ggml.model = gpt2`)
/// is supported; anything else is an error naming the model.
pub fn load_tokenizer(f: &GgufFile) -> Result<Tokenizer> {
    let model = f.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(bad(
            "tokenizer.ggml.model",
            format!("`{model}` is not supported (only gpt2 byte-level BPE)"),
        ));
    }
    let token_types = match f.get("tokenizer.ggml.token_type") {
        None => Vec::new(),
        Some(_) => f
            .get_array("tokenizer.ggml.token_type")?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::I32(t) => Ok(*t),
                Value::U32(t) => i32::try_from(*t)
                    .map_err(|_| bad("tokenizer.ggml.token_type", format!("element {i} = {t}"))),
                _ => Err(bad(
                    "tokenizer.ggml.token_type",
                    format!("element {i} is not an integer"),
                )),
            })
            .collect::<Result<_>>()?,
    };
    let data = VocabData {
        tokens: strings(f, "tokenizer.ggml.tokens")?,
        token_types,
        merges: strings(f, "tokenizer.ggml.merges")?,
        pre: match f.get("tokenizer.ggml.pre") {
            Some(_) => f.get_str("tokenizer.ggml.pre")?.to_string(),
            None => "default".to_string(),
        },
        bos: opt_id(f, "tokenizer.ggml.bos_token_id")?,
        eos: opt_id(f, "tokenizer.ggml.eos_token_id")?,
        eot: opt_id(f, "tokenizer.ggml.eot_token_id")?,
        pad: opt_id(f, "tokenizer.ggml.padding_token_id")?,
        add_bos: opt_bool(f, "tokenizer.ggml.add_bos_token", false)?,
        add_eos: opt_bool(f, "tokenizer.ggml.add_eos_token", false)?,
    };
    Ok(Tokenizer::new(data)?)
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

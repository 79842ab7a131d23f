//! `tokenizer.json`, `tokenizer_config.json` and the chat template to GGUF
//! tokenizer metadata (`_set_vocab_gpt2` and gguf-py's `SpecialVocab`).

use std::path::Path;

use serde_json::Value as Json;
use shohin_gguf::{Value, ValueType};

use crate::{file_err, key_err, read_json, read_json_opt, ConvertError};

mod special;
use special::special_vocab;

/// The `pre_tokenizer` of a `tokenizer.json` as `Split` regex patterns
/// (ByteLevel without its own regex after them) and the
/// `tokenizer.ggml.pre` name convert_hf_to_gguf.py's `get_vocab_base_pre`
/// gives the models that use it.
const SPLIT_PRE: [(&str, &str); 2] = [
    // Meta-Llama-3 (3, 3.1, 3.2, 3.3)
    (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        "llama-bpe",
    ),
    // Qwen1.5 / Qwen2 / Qwen3
    (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        "qwen2",
    ),
];

/// `tokenizer.ggml.pre` of a Llama checkpoint's BPE `tokenizer.json`. The
/// converter hashes the ids its tokenizer gives a check text (so the name
/// follows the pre-tokenizer, and the vocabulary too); shohin, which does
/// not run the Hugging Face tokenizer, names it by the pre-tokenizer alone:
/// Llama 3's regex split (`llama-bpe`), Qwen2's (`qwen2`), or SmolLM's
/// individual digits then GPT-2's byte-level regex (`smollm`). Others are
/// refused, as the converter refuses a hash it does not know.
fn llama_pre(tok: &Json, tpath: &Path) -> Result<&'static str, ConvertError> {
    let pre = tok.get("pre_tokenizer").unwrap_or(&Json::Null);
    let list: Vec<&Json> = match pre.get("type").and_then(Json::as_str) {
        Some("Sequence") => pre
            .get("pretokenizers")
            .and_then(Json::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(_) => vec![pre],
        None => Vec::new(),
    };
    fn ty(j: &Json) -> &str {
        j.get("type").and_then(Json::as_str).unwrap_or("")
    }
    let flag = |j: &Json, k: &str| j.get(k).and_then(Json::as_bool);
    if let [split, bl] = list.as_slice() {
        let regex = split
            .get("pattern")
            .and_then(|p| p.get("Regex"))
            .and_then(Json::as_str);
        let isolated = split.get("behavior").and_then(Json::as_str) == Some("Isolated")
            && flag(split, "invert") != Some(true);
        if ty(split) == "Split"
            && isolated
            && ty(bl) == "ByteLevel"
            && flag(bl, "use_regex") == Some(false)
        {
            if let Some((_, name)) = SPLIT_PRE.iter().find(|(re, _)| Some(*re) == regex) {
                return Ok(name);
            }
        }
        if ty(split) == "Digits"
            && flag(split, "individual_digits") == Some(true)
            && ty(bl) == "ByteLevel"
            && flag(bl, "use_regex") != Some(false)
        {
            return Ok("smollm");
        }
    }
    Err(key_err(
        tpath,
        "pre_tokenizer",
        "BPE pre-tokenizer not recognized (known: Llama 3's and Qwen2's regex splits \
         (llama-bpe, qwen2), SmolLM's digits + byte-level (smollm))",
    ))
}

/// The tokenizer metadata, in the order convert_hf_to_gguf.py writes it;
/// `arch` picks the model class's `set_vocab`.
pub(crate) fn tokenizer_metadata(
    dir: &Path,
    cfg: &Json,
    n_vocab: usize,
    arch: &str,
) -> Result<Vec<(String, Value)>, ConvertError> {
    let tpath = dir.join("tokenizer.json");
    let llama = arch == "llama";
    if llama {
        // LlamaModel.set_vocab tries SentencePiece first
        let spm = dir.join("tokenizer.model");
        if spm.is_file() {
            return Err(file_err(
                &spm,
                "SentencePiece tokenizers are not supported (only byte-level BPE tokenizer.json)",
            ));
        }
    }
    let tok = read_json(&tpath)?;
    let model = tok
        .get("model")
        .ok_or_else(|| key_err(&tpath, "model", "missing"))?;
    let ty = model.get("type").and_then(Json::as_str).unwrap_or("");
    if ty != "BPE" {
        return Err(key_err(
            &tpath,
            "model.type",
            format!("{ty:?} is not supported (only BPE)"),
        ));
    }
    let mut pre = "qwen2";
    if llama {
        // a BPE with byte fallback is a SentencePiece vocabulary
        // (_set_vocab_llama_hf); Llama 3's has none
        if model.get("byte_fallback").and_then(Json::as_bool) == Some(true) {
            return Err(key_err(
                &tpath,
                "model.byte_fallback",
                "SentencePiece-style BPE (byte_fallback) is not supported (only byte-level BPE)",
            ));
        }
        pre = llama_pre(&tok, &tpath)?;
    }
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| key_err(&tpath, "model.vocab", "missing"))?;
    let mut tokens: Vec<Option<String>> = vec![None; n_vocab];
    let mut types = vec![1i32; n_vocab];
    let mut put = |key: &str, text: &str, id: &Json| -> Result<usize, ConvertError> {
        let id = id
            .as_u64()
            .map(|i| i as usize)
            .ok_or_else(|| key_err(&tpath, key, format!("bad id {id} for {text:?}")))?;
        if id >= n_vocab {
            return Err(key_err(
                &tpath,
                key,
                format!("id {id} of {text:?} is not below vocab_size {n_vocab}"),
            ));
        }
        tokens[id] = Some(text.to_owned());
        Ok(id)
    };
    for (text, id) in vocab {
        put("model.vocab", text, id)?;
    }
    let added = tok
        .get("added_tokens")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &added {
        let text = a.get("content").and_then(Json::as_str).unwrap_or("");
        let id = put("added_tokens", text, a.get("id").unwrap_or(&Json::Null))?;
        let special = a.get("special").and_then(Json::as_bool).unwrap_or(false);
        let looks = matches!(text, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
            || (text.starts_with("<|") && text.ends_with("|>"));
        types[id] = if special || looks { 3 } else { 4 };
    }
    let mut list = Vec::with_capacity(n_vocab);
    for (i, t) in tokens.into_iter().enumerate() {
        match t {
            Some(t) => list.push(Value::String(t)),
            None => {
                list.push(Value::String(format!("[PAD{i}]")));
                types[i] = 5;
            }
        }
    }
    let tc_path = dir.join("tokenizer_config.json");
    let tc = read_json_opt(&tc_path)?;
    let mut md: Vec<(String, Value)> = Vec::new();
    if llama {
        // LlamaModel.set_vocab, before the vocabulary
        match tc.as_ref().and_then(|t| t.get("add_prefix_space")) {
            None | Some(Json::Null) => {}
            Some(Json::Bool(b)) => {
                md.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(*b)))
            }
            Some(v) => {
                return Err(key_err(
                    &tc_path,
                    "add_prefix_space",
                    format!("{v} is not a boolean"),
                ))
            }
        }
    }
    md.extend([
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(ValueType::String, list),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
        ),
    ]);
    // merges: "a b" strings, or pairs (spaces inside a part become U+0120)
    if let Some(merges) = model.get("merges").and_then(Json::as_array) {
        let mut out = Vec::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let s = match m {
                Json::String(s) => s.clone(),
                Json::Array(p) if p.len() == 2 && p.iter().all(Json::is_string) => p
                    .iter()
                    .map(|s| s.as_str().unwrap_or("").replace(' ', "\u{120}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => {
                    return Err(key_err(
                        &tpath,
                        &format!("model.merges[{i}]"),
                        "not a string or a pair of strings",
                    ))
                }
            };
            out.push(Value::String(s));
        }
        if !out.is_empty() {
            md.push((
                "tokenizer.ggml.merges".into(),
                Value::Array(ValueType::String, out),
            ));
        }
    }
    md.extend(special_vocab(dir, cfg, &tok, tc, &added, n_vocab)?);
    if llama && n_vocab == 49152 {
        // LlamaModel.set_vocab for Granite's small models (and SmolLM's
        // vocabulary of the same size): overwrites the key in place
        let key = "tokenizer.ggml.add_bos_token";
        match md.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = Value::Bool(false),
            None => md.push((key.into(), Value::Bool(false))),
        }
    }
    Ok(md)
}

//! `tokenizer.json`, `tokenizer_config.json` and the chat template to GGUF
//! tokenizer metadata (`_set_vocab_gpt2` and gguf-py's `SpecialVocab`).

use std::path::Path;

use serde_json::Value as Json;
use shohin_gguf::{Value, ValueType};

use crate::{file_err, key_err, read_json, read_json_opt, ConvertError};

/// The tokenizer metadata, in the order convert_hf_to_gguf.py writes it.
pub(crate) fn tokenizer_metadata(
    dir: &Path,
    cfg: &Json,
    n_vocab: usize,
) -> Result<Vec<(String, Value)>, ConvertError> {
    let tpath = dir.join("tokenizer.json");
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
    let mut md: Vec<(String, Value)> = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("qwen2".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(ValueType::String, list),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(ValueType::I32, types.into_iter().map(Value::I32).collect()),
        ),
    ];
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
    // special tokens (gguf-py SpecialVocab)
    let mut add_special: Vec<(&str, bool)> = Vec::new();
    let set_add = |v: &mut Vec<(&'static str, bool)>, typ: &'static str, b: bool, force: bool| {
        if let Some(e) = v.iter_mut().find(|(t, _)| *t == typ) {
            if force {
                e.1 = b;
            }
        } else {
            v.push((typ, b));
        }
    };
    if let Some(pp) = tok.get("post_processor").filter(|p| !p.is_null()) {
        let procs = pp
            .get("processors")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_else(|| vec![pp.clone()]);
        for p in procs {
            match p.get("type").and_then(Json::as_str) {
                Some("ByteLevel") => {
                    set_add(&mut add_special, "bos", false, false);
                    set_add(&mut add_special, "eos", false, false);
                }
                Some("RobertaProcessing") => {
                    set_add(&mut add_special, "bos", true, true);
                    set_add(&mut add_special, "eos", true, true);
                    set_add(&mut add_special, "sep", true, true);
                }
                _ => {}
            }
        }
    }
    const TYPES: [(&str, &str); 7] = [
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("unk", "unknown_token_id"),
        ("sep", "seperator_token_id"),
        ("pad", "padding_token_id"),
        ("cls", "cls_token_id"),
        ("mask", "mask_token_id"),
    ];
    let mut ids: Vec<(&str, u32)> = Vec::new();
    let mut set_id = |typ: &'static str, id: Option<u64>| {
        if let Some(id) = id.filter(|&i| (i as usize) < n_vocab) {
            if !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id as u32));
            }
        }
    };
    let tc_path = dir.join("tokenizer_config.json");
    let tc = read_json_opt(&tc_path)?;
    let mut chat_template: Option<String> = None;
    if let Some(tc) = &tc {
        for (typ, _) in TYPES {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Json::as_bool) {
                set_add(&mut add_special, typ, b, false);
            }
            let content = match tc.get(format!("{typ}_token")) {
                Some(Json::String(s)) => Some(s.as_str()),
                Some(Json::Object(o)) => o.get("content").and_then(Json::as_str),
                _ => None,
            };
            if let Some(c) = content {
                let id = added
                    .iter()
                    .find(|a| a.get("content").and_then(Json::as_str) == Some(c))
                    .and_then(|a| a.get("id").and_then(Json::as_u64));
                set_id(typ, id);
            }
        }
        chat_template = match tc.get("chat_template") {
            Some(Json::String(s)) => Some(s.clone()),
            _ => None,
        };
    }
    if chat_template.is_none() {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            chat_template = Some(std::fs::read_to_string(&jinja).map_err(|e| file_err(&jinja, e))?);
        } else if let Some(j) = read_json_opt(&dir.join("chat_template.json"))? {
            chat_template = j
                .get("chat_template")
                .and_then(Json::as_str)
                .map(str::to_owned);
        }
    }
    for (typ, _) in TYPES {
        set_id(
            typ,
            cfg.get(format!("{typ}_token_id")).and_then(Json::as_u64),
        );
    }
    for (typ, key) in TYPES {
        if let Some((_, id)) = ids.iter().find(|(t, _)| *t == typ) {
            md.push((format!("tokenizer.ggml.{key}"), Value::U32(*id)));
        }
    }
    for (typ, b) in add_special {
        md.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(b)));
    }
    if let Some(t) = chat_template {
        md.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok(md)
}

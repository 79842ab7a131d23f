//! gguf-py's `SpecialVocab` for [`super::tokenizer_metadata`]: special
//! token ids, `add_*_token` flags and the chat template.

use std::path::Path;

use serde_json::Value as Json;
use shohin_gguf::Value;

use crate::{file_err, key_err, read_json_opt, ConvertError};

/// gguf-py's `SpecialVocab` (its `_try_load_from_tokenizer_json`,
/// `_try_load_from_config_json` and `add_to_gguf`): merges are written by
/// the caller; this gives the special token ids (in the order they were
/// found), the `add_*_token` flags and the chat template.
pub(super) fn special_vocab(
    dir: &Path,
    cfg: &Json,
    tok: &Json,
    tc: Option<Json>,
    added: &[Json],
    n_vocab: usize,
) -> Result<Vec<(String, Value)>, ConvertError> {
    // special_token_types, extended with eot / eom by TemplateProcessing
    let mut types: Vec<&'static str> = vec!["bos", "eos", "unk", "sep", "pad", "cls", "mask"];
    let mut add_special: Vec<(&'static str, bool)> = Vec::new();
    fn set_add(v: &mut Vec<(&'static str, bool)>, typ: &'static str, b: bool, force: bool) {
        match v.iter_mut().find(|(t, _)| *t == typ) {
            Some(e) if force => e.1 = b,
            Some(_) => {}
            None => v.push((typ, b)),
        }
    }
    let mut tc = tc;
    let truthy = |v: &Json| match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
        Json::Number(n) => n.as_f64() != Some(0.0),
    };
    let tc_get = |tc: &Option<Json>, k: &str| -> Json {
        tc.as_ref()
            .and_then(|t| t.get(k))
            .cloned()
            .unwrap_or(Json::Null)
    };
    let tc_set = |tc: &mut Option<Json>, k: &str, v: Json| {
        if let Some(Json::Object(o)) = tc.as_mut() {
            o.insert(k.to_owned(), v);
        }
    };
    let has_tc = tc.as_ref().is_some_and(truthy);
    let mut bos = tc_get(&tc, "bos_token");
    let mut cls = tc_get(&tc, "cls_token");
    let mut eos = tc_get(&tc, "eos_token");
    let mut sep = tc_get(&tc, "sep_token");
    if !truthy(&bos) && truthy(&cls) && has_tc {
        bos = cls.clone();
        tc_set(&mut tc, "bos_token", bos.clone());
    }
    if !truthy(&eos) && truthy(&sep) && has_tc {
        eos = sep.clone();
        tc_set(&mut tc, "eos_token", eos.clone());
    }
    if let Some(pp) = tok.get("post_processor").filter(|p| truthy(p)) {
        let procs = pp
            .get("processors")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_else(|| vec![pp.clone()]);
        let special_id = |j: Option<&Json>| -> Json {
            j.and_then(|e| e.get("SpecialToken"))
                .and_then(|s| s.get("id"))
                .cloned()
                .unwrap_or(Json::Null)
        };
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
                    let first = |k: &str, or: &Json| {
                        p.get(k)
                            .and_then(|v| v.get(0))
                            .cloned()
                            .unwrap_or_else(|| or.clone())
                    };
                    if !truthy(&cls) && has_tc {
                        cls = first("cls", &bos);
                        tc_set(&mut tc, "cls_token", cls.clone());
                    }
                    if !truthy(&sep) && has_tc {
                        sep = first("sep", &eos);
                        tc_set(&mut tc, "sep_token", sep.clone());
                    }
                }
                Some("TemplateProcessing") => {
                    let single = p
                        .get("single")
                        .and_then(Json::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let pair = p
                        .get("pair")
                        .and_then(Json::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let mut first = Json::Null;
                    let mut last = Json::Null;
                    if single.len() > 1 {
                        first = special_id(single.first());
                        if truthy(&first) {
                            if !has_tc {
                                bos = first.clone();
                            } else if first != bos && first != cls {
                                if !truthy(&bos) {
                                    bos = first.clone();
                                    tc_set(&mut tc, "bos_token", bos.clone());
                                }
                                if !truthy(&cls) {
                                    cls = first.clone();
                                    tc_set(&mut tc, "cls_token", cls.clone());
                                }
                            }
                            set_add(&mut add_special, "bos", first == bos || first == cls, true);
                        }
                        last = special_id(single.last());
                        if truthy(&last) {
                            if !has_tc {
                                eos = last.clone();
                            } else if last != eos {
                                if !types.contains(&"eot") {
                                    types.push("eot");
                                    tc_set(&mut tc, "eot_token", eos.clone());
                                } else if !types.contains(&"eom") {
                                    types.push("eom");
                                    tc_set(&mut tc, "eom_token", eos.clone());
                                }
                                eos = last.clone();
                                tc_set(&mut tc, "eos_token", eos.clone());
                            }
                            set_add(&mut add_special, "eos", last == eos, true);
                        }
                    }
                    if !pair.is_empty() {
                        let start =
                            usize::from(truthy(&first) && special_id(pair.first()) == first);
                        let stop = usize::from(truthy(&last) && special_id(pair.last()) == last);
                        let inner = if start + stop <= pair.len() {
                            &pair[start..pair.len() - stop]
                        } else {
                            &[][..]
                        };
                        let seq = |j: &Json| {
                            j.get("Sequence")
                                .and_then(|s| s.get("id"))
                                .and_then(Json::as_str)
                                .map(str::to_owned)
                        };
                        if inner.len() > 2
                            && seq(&inner[0]).as_deref() == Some("A")
                            && seq(&inner[inner.len() - 1]).as_deref() == Some("B")
                        {
                            let mid = &inner[1..inner.len() - 1];
                            let mut add_sep = false;
                            let e0 = special_id(mid.first());
                            if truthy(&e0) && (e0 == sep || e0 == eos) && !truthy(&last) {
                                add_sep = true;
                            }
                            if mid.len() == 2 {
                                let e1 = special_id(mid.get(1));
                                if truthy(&e1) && (e1 == sep || e1 == eos) {
                                    add_sep = true;
                                }
                            }
                            set_add(&mut add_special, "sep", add_sep, true);
                            if add_sep && !truthy(&sep) && has_tc {
                                tc_set(&mut tc, "sep_token", eos.clone());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut ids: Vec<(&'static str, u32)> = Vec::new();
    let mut set_id = |typ: &'static str, id: Option<u64>| {
        if let Some(id) = id.filter(|&i| (i as usize) < n_vocab) {
            if !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id as u32));
            }
        }
    };
    let mut chat_template: Option<String> = None;
    if let Some(tc) = tc.as_ref().filter(|t| truthy(t)) {
        if let Some(t) = tc.get("chat_template") {
            // gguf-py ignores a template that is not a string or a list
            chat_template = match t {
                Json::String(s) => Some(s.clone()),
                Json::Array(_) => {
                    return Err(key_err(
                        &dir.join("tokenizer_config.json"),
                        "chat_template",
                        "a list of named templates is not supported",
                    ))
                }
                _ => None,
            };
        } else {
            let jinja = dir.join("chat_template.jinja");
            if jinja.is_file() {
                chat_template =
                    Some(std::fs::read_to_string(&jinja).map_err(|e| file_err(&jinja, e))?);
            } else if let Some(j) = read_json_opt(&dir.join("chat_template.json"))? {
                chat_template = j
                    .get("chat_template")
                    .and_then(Json::as_str)
                    .map(str::to_owned);
            }
        }
        for &typ in &types {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Json::as_bool) {
                set_add(&mut add_special, typ, b, false);
            }
            let content = match tc.get(format!("{typ}_token")) {
                Some(Json::String(s)) => Some(s.as_str()),
                Some(Json::Object(o)) => match o.get("content").and_then(Json::as_str) {
                    Some(c) => Some(c),
                    None => continue,
                },
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
    }
    for &typ in &types {
        set_id(
            typ,
            cfg.get(format!("{typ}_token_id")).and_then(Json::as_u64),
        );
    }
    let mut md = Vec::new();
    for (typ, id) in ids {
        // GGUFWriter has no add_cls_token_id: skipped, as gguf-py does
        let key = match typ {
            "bos" => "bos_token_id",
            "eos" => "eos_token_id",
            "unk" => "unknown_token_id",
            "sep" => "seperator_token_id",
            "pad" => "padding_token_id",
            "mask" => "mask_token_id",
            "eot" => "eot_token_id",
            "eom" => "eom_token_id",
            _ => continue,
        };
        md.push((format!("tokenizer.ggml.{key}"), Value::U32(id)));
    }
    for (typ, b) in add_special {
        if matches!(typ, "bos" | "eos" | "sep") {
            md.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(b)));
        }
    }
    if let Some(t) = chat_template {
        md.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    // _parse_normalizer
    let (mut lower, mut strip) = (None, None);
    fn normalizer(n: &Json, lower: &mut Option<bool>, strip: &mut Option<bool>) {
        match n.get("type").and_then(Json::as_str) {
            Some("Lowercase") => *lower = Some(true),
            Some("StripAccents") => *strip = Some(true),
            Some("BertNormalizer") => {
                if let Some(b) = n.get("lowercase").and_then(Json::as_bool) {
                    *lower = Some(b);
                }
                if let Some(b) = n.get("strip_accents").and_then(Json::as_bool) {
                    *strip = Some(b);
                }
            }
            Some("Sequence") => {
                for m in n
                    .get("normalizers")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    normalizer(m, lower, strip);
                }
            }
            _ => {}
        }
    }
    if let Some(n) = tok.get("normalizer").filter(|n| truthy(n)) {
        normalizer(n, &mut lower, &mut strip);
    }
    if let Some(b) = lower {
        md.push(("tokenizer.ggml.normalizer.lowercase".into(), Value::Bool(b)));
    }
    if let Some(b) = strip {
        md.push((
            "tokenizer.ggml.normalizer.strip_accents".into(),
            Value::Bool(b),
        ));
    }
    Ok(md)
}

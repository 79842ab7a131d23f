//! Constrained decoding on the real model: the generation step masks the
//! logits with the grammar (llguidance), so JSON-schema and GBNF outputs are
//! valid at any temperature, and the generation ends when the grammar is
//! complete. Validity is checked by parsing the text independently
//! (serde_json, and each schema rule by hand), not by the matcher itself.

mod common;
use common::*;
use serde_json::{json, Value};
use shohin_engine::generate::{FinishReason, GenParams, Generator};
use shohin_engine::sampler::SamplerConfig;
use shohin_engine::session::Session;
use shohin_grammar::{GrammarSpec, Grammars};
use std::sync::Arc;

fn generate(
    model: &shohin_engine::model::Model,
    tok: &shohin_tokenizer::Tokenizer,
    prompt: &str,
    params: GenParams,
) -> (String, Option<FinishReason>) {
    let mut gen = Generator::new(params).unwrap();
    let mut s = Session::new(model, 2048);
    s.prompt(&tok.encode(prompt, true, true)).unwrap();
    let mut text = String::new();
    loop {
        let room = s.tokens().len() < s.n_ctx();
        let next = gen.next(tok, s.logits(), s.tokens(), room).unwrap();
        text.push_str(&next.text);
        if next.finish.is_some() {
            return (text, next.finish);
        }
        s.step(next.id).unwrap();
    }
}

fn params(temp: f32, seed: u64, c: shohin_grammar::Constraint) -> GenParams {
    GenParams {
        sampling: SamplerConfig {
            temperature: temp,
            seed,
            ..SamplerConfig::default()
        },
        max_tokens: 400,
        constraint: Some(c),
        ..GenParams::default()
    }
}

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "color": {"enum": ["red", "green", "blue"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 10},
                     "minItems": 1, "maxItems": 3},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 20},
                               "zip": {"type": "integer", "minimum": 10000, "maximum": 99999}},
                "required": ["city", "zip"],
                "additionalProperties": false
            }
        },
        "required": ["name", "age", "color", "tags", "address"],
        "additionalProperties": false
    })
}

/// Every rule of [`schema`], checked on the parsed value.
fn check(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("not an object")?;
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort();
    if keys != ["address", "age", "color", "name", "tags"] {
        return Err(format!("keys {keys:?}"));
    }
    let name = o["name"].as_str().ok_or("name")?;
    if name.chars().count() > 20 {
        return Err("name too long".into());
    }
    let age = o["age"].as_i64().ok_or("age not an integer")?;
    if !(0..=120).contains(&age) {
        return Err(format!("age {age}"));
    }
    if !["red", "green", "blue"].contains(&o["color"].as_str().ok_or("color")?) {
        return Err("color".into());
    }
    let tags = o["tags"].as_array().ok_or("tags")?;
    if tags.is_empty() || tags.len() > 3 || tags.iter().any(|t| !t.is_string()) {
        return Err(format!("tags {tags:?}"));
    }
    let a = o["address"].as_object().ok_or("address")?;
    if a.len() != 2 || !a["city"].is_string() {
        return Err(format!("address {a:?}"));
    }
    let zip = a["zip"].as_i64().ok_or("zip")?;
    if !(10000..=99999).contains(&zip) {
        return Err(format!("zip {zip}"));
    }
    Ok(())
}

#[test]
fn json_schema_output_is_valid_at_temperature_one() {
    let path = real_model();
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let model = load(&path, 2);
    let g = Grammars::new(&tok).unwrap();
    let c = g.compile(&GrammarSpec::JsonSchema(schema())).unwrap();
    let prompt = "<|im_start|>user\nDescribe a person as JSON.<|im_end|>\n<|im_start|>assistant\n";
    for seed in 0..4 {
        let (text, finish) = generate(&model, &tok, prompt, params(1.0, seed, c.clone()));
        assert_eq!(finish, Some(FinishReason::Stop), "seed {seed}: {text}");
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {text}"));
        check(&v).unwrap_or_else(|e| panic!("seed {seed}: {e}: {text}"));
    }
    // The check above can fail: the unconstrained model does not write this.
    let (free, _) = generate(
        &model,
        &tok,
        prompt,
        GenParams {
            max_tokens: 60,
            ..GenParams::default()
        },
    );
    let parsed: Result<Value, _> = serde_json::from_str(&free);
    assert!(parsed.map(|v| check(&v).is_err()).unwrap_or(true), "{free}");
}

#[test]
fn gbnf_and_json_object_and_regex() {
    let path = real_model();
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let model = load(&path, 2);
    let g = Grammars::new(&tok).unwrap();
    let prompt = "<|im_start|>user\nIs the sky blue? Then list three colours.<|im_end|>\n<|im_start|>assistant\n";

    let gbnf = "root ::= answer \": \" color (\", \" color){2}\nanswer ::= \"Yes\" | \"No\"\ncolor ::= [a-z]{3,8}\n";
    let c = g.compile(&GrammarSpec::Gbnf(gbnf.into())).unwrap();
    for seed in 0..3 {
        let (text, finish) = generate(&model, &tok, prompt, params(1.0, seed, c.clone()));
        assert_eq!(finish, Some(FinishReason::Stop), "{text}");
        let (ans, rest) = text.split_once(": ").unwrap_or_else(|| panic!("{text}"));
        assert!(ans == "Yes" || ans == "No", "{text}");
        let colors: Vec<&str> = rest.split(", ").collect();
        assert_eq!(colors.len(), 3, "{text}");
        for c in colors {
            assert!((3..=8).contains(&c.len()), "{text}");
            assert!(c.bytes().all(|b| b.is_ascii_lowercase()), "{text}");
        }
    }

    let c = g.compile(&GrammarSpec::JsonObject).unwrap();
    let (text, finish) = generate(&model, &tok, prompt, params(0.8, 7, c));
    assert_eq!(finish, Some(FinishReason::Stop), "{text}");
    assert!(
        serde_json::from_str::<Value>(&text).unwrap().is_object(),
        "{text}"
    );

    let c = g
        .compile(&GrammarSpec::Regex("[0-9]{3}-[0-9]{4}".into()))
        .unwrap();
    let (text, _) = generate(&model, &tok, prompt, params(1.0, 3, c));
    assert_eq!(text.len(), 8, "{text}");
    assert!(text.as_bytes()[3] == b'-', "{text}");
}

#[test]
fn unsupported_and_invalid_grammars_are_errors() {
    let path = real_model();
    let f = shohin_gguf::GgufFile::open(&path).unwrap();
    let tok = Arc::new(shohin_engine::vocab::load_tokenizer(&f).unwrap());
    let g = Grammars::new(&tok).unwrap();
    for (spec, want) in [
        (
            GrammarSpec::JsonSchema(json!({"type": "object", "if": {"type": "object"}})),
            "Unimplemented keys",
        ),
        (GrammarSpec::JsonSchema(json!("nope")), "must be an object"),
        (GrammarSpec::Gbnf("root ::= (\"a\"".into()), "GBNF"),
        (
            GrammarSpec::Lark("start: nothing_here".into()),
            "nothing_here",
        ),
    ] {
        let e = g.compile(&spec).unwrap_err().to_string();
        assert!(e.contains(want), "{spec:?}: {e}");
    }
}

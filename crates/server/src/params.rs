//! The request fields shared by `/v1/chat/completions` and
//! `/v1/completions`: model, sampling, limits, stop strings, `n`,
//! log-probabilities, streaming and LoRA adapters.

use crate::body::{type_name, Fields};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::http::StatusCode;
use serde_json::Value;
use shohin_engine::generate::GenParams;
use shohin_engine::lora::ActiveLora;
use shohin_engine::sampler::SamplerConfig;
use shohin_grammar::GrammarSpec;

/// `max_tokens` above this is refused (no slot holds that many anyway).
pub const MAX_TOKENS_LIMIT: i64 = 1_000_000;
/// Stop strings per request at most.
pub const MAX_STOP: usize = 16;
/// `top_logprobs` / legacy `logprobs` at most (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i64 = 20;

/// `model`: absent, or one of the names the served model answers to.
pub fn check_model(f: &Fields<'_>, st: &AppState) -> ApiResult<()> {
    match f.str("model")? {
        None | Some("") => Ok(()),
        Some(m) if st.model_names.iter().any(|n| n == m) => Ok(()),
        Some(m) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!(
                "The model '{m}' does not exist; this server serves '{}'",
                st.model_id
            ),
        )
        .param("model")
        .code("model_not_found")),
    }
}

/// Which log-probability fields the endpoint has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `logprobs: bool` + `top_logprobs: 0..=20`.
    Chat,
    /// `logprobs: 0..=20` (legacy completions).
    Text,
}

/// A parsed generation request.
pub struct Generation {
    pub params: GenParams,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    /// The grammar the output must follow and the request field that
    /// asked for it (compiled by the handler, off the async workers).
    pub grammar: Option<(GrammarSpec, &'static str)>,
    /// The LoRA adapters and scales (llama-server's `lora` field).
    pub lora: Vec<ActiveLora>,
}

pub fn parse_generation(f: &Fields<'_>, st: &AppState, flavor: Flavor) -> ApiResult<Generation> {
    let d = st.sampling;
    let num = |key: &str, lo: f64, lo_open: bool, hi: f64, default: f32| -> ApiResult<f32> {
        Ok(f.number(key, lo, lo_open, hi)?
            .map_or(default, |x| x as f32))
    };
    let top_k = match f.int("top_k", -1, i64::from(u32::MAX))? {
        None => d.top_k,
        // -1 (as vLLM spells it) and 0 both turn top-k off.
        Some(k) => usize::try_from(k.max(0)).unwrap_or(usize::MAX),
    };
    let seed = match f.get("seed") {
        None => st.default_seed(),
        Some(v) => match (v.as_u64(), v.as_i64()) {
            (Some(u), _) => u,
            // A negative seed is taken bit for bit.
            (None, Some(i)) => i as u64,
            _ => {
                return Err(ApiError::invalid(
                    "seed",
                    format!("'seed' must be an integer, got {}", type_name(v)),
                ))
            }
        },
    };
    let sampling = SamplerConfig {
        temperature: num("temperature", 0.0, false, 100.0, d.temperature)?,
        top_k,
        top_p: num("top_p", 0.0, true, 1.0, d.top_p)?,
        min_p: num("min_p", 0.0, false, 1.0, d.min_p)?,
        repeat_penalty: num("repeat_penalty", 0.0, true, 100.0, d.repeat_penalty)?,
        repeat_last_n: match f.int("repeat_last_n", -1, MAX_TOKENS_LIMIT)? {
            None => d.repeat_last_n,
            Some(-1) => usize::MAX,
            Some(n) => n as usize,
        },
        presence_penalty: num("presence_penalty", -2.0, false, 2.0, d.presence_penalty)?,
        frequency_penalty: num("frequency_penalty", -2.0, false, 2.0, d.frequency_penalty)?,
        seed,
    };
    // OpenAI: max_completion_tokens supersedes the deprecated max_tokens.
    let max_tokens = match f.int("max_completion_tokens", 1, MAX_TOKENS_LIMIT)? {
        Some(m) => Some(m),
        None => f.int("max_tokens", 1, MAX_TOKENS_LIMIT)?,
    }
    .map_or(usize::MAX, |m| m as usize);
    let n_slots = st.engine.config().n_slots;
    let n = f.int("n", 1, n_slots as i64).map_err(|mut e| {
        e.message = format!("'n' must be an integer from 1 to {n_slots} (this server's slots)");
        e
    })?;
    let n = n.map_or(1, |n| n as usize);
    let stop = parse_stop(f)?;
    let logprobs = match flavor {
        Flavor::Chat => {
            let on = f.bool("logprobs")?.unwrap_or(false);
            let top = f.int("top_logprobs", 0, MAX_TOP_LOGPROBS)?;
            if top.is_some() && !on {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "'top_logprobs' needs 'logprobs' to be true",
                ));
            }
            on.then(|| top.unwrap_or(0) as usize)
        }
        Flavor::Text => f.int("logprobs", 0, MAX_TOP_LOGPROBS)?.map(|k| k as usize),
    };
    // llama-server's extension, for fixed-length benchmarks.
    let ignore_eos = f.bool("ignore_eos")?.unwrap_or(false);
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.object("stream_options")? {
        Some(o) => Fields::nested(o, "stream_options")
            .bool("include_usage")?
            .unwrap_or(false),
        None => false,
    };
    if f.bool("echo")?.unwrap_or(false) {
        return Err(ApiError::invalid("echo", "'echo' is not supported"));
    }
    if let Some(b) = f.object("logit_bias")? {
        if !b.is_empty() {
            return Err(ApiError::invalid(
                "logit_bias",
                "'logit_bias' is not supported",
            ));
        }
    }
    let grammar = parse_grammar(f)?;
    let lora = st.lora.set(crate::lora::parse_request(f, st)?);
    Ok(Generation {
        params: GenParams {
            sampling,
            max_tokens,
            stop,
            logprobs,
            ignore_eos,
            constraint: None,
        },
        n,
        stream,
        include_usage,
        grammar,
        lora,
    })
}

/// The output constraint: OpenAI's `response_format` (`text`,
/// `json_object`, `json_schema` with `json_schema.schema`), or llama.cpp's
/// `json_schema` (a schema object) or `grammar` (GBNF text). At most one.
pub fn parse_grammar(f: &Fields<'_>) -> ApiResult<Option<(GrammarSpec, &'static str)>> {
    let mut found: Vec<(GrammarSpec, &'static str)> = Vec::new();
    if let Some(rf) = f.object("response_format")? {
        let rff = Fields::nested(rf, "response_format");
        match rff.str("type")? {
            None | Some("text") => {}
            Some("json_object") => found.push((GrammarSpec::JsonObject, "response_format")),
            Some("json_schema") => {
                let js = rff.object("json_schema")?.ok_or_else(|| {
                    ApiError::invalid(
                        "response_format.json_schema",
                        "'response_format.json_schema' is required when 'response_format.type' is 'json_schema'",
                    )
                })?;
                let jsf = Fields::nested(js, "response_format.json_schema");
                // `strict` false or absent is enforced all the same: the
                // output follows the schema either way.
                jsf.bool("strict")?;
                let schema = match jsf.get("schema") {
                    None => serde_json::json!({}),
                    Some(v @ Value::Object(_)) => v.clone(),
                    Some(v) => {
                        return Err(ApiError::invalid(
                            "response_format.json_schema.schema",
                            format!(
                                "'response_format.json_schema.schema' must be an object, got {}",
                                type_name(v)
                            ),
                        ))
                    }
                };
                found.push((GrammarSpec::JsonSchema(schema), "response_format.json_schema.schema"));
            }
            Some(t) => {
                return Err(ApiError::invalid(
                    "response_format.type",
                    format!("'response_format.type' = '{t}' is not supported: use text, json_object or json_schema"),
                ))
            }
        }
    }
    match f.get("json_schema") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => {
            found.push((GrammarSpec::JsonSchema(v.clone()), "json_schema"))
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "json_schema",
                format!("'json_schema' must be an object, got {}", type_name(v)),
            ))
        }
    }
    match f.str("grammar")? {
        None | Some("") => {}
        Some(g) => found.push((GrammarSpec::Gbnf(g.to_string()), "grammar")),
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|g| g.1).collect();
        return Err(ApiError::invalid(
            found[1].1,
            format!(
                "only one of response_format, json_schema and grammar may be given; got {}",
                names.join(" and ")
            ),
        ));
    }
    Ok(found.pop())
}

/// `stop`: a string or an array of at most [`MAX_STOP`] strings.
fn parse_stop(f: &Fields<'_>) -> ApiResult<Vec<String>> {
    let v = match f.get("stop") {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            if a.len() > MAX_STOP {
                return Err(ApiError::invalid(
                    "stop",
                    format!(
                        "'stop' has {} entries; at most {MAX_STOP} are allowed",
                        a.len()
                    ),
                ));
            }
            a.iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ApiError::invalid(
                        format!("stop[{i}]"),
                        format!("'stop[{i}]' must be a string, got {}", type_name(other)),
                    )),
                })
                .collect::<ApiResult<Vec<_>>>()?
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "'stop' must be a string or an array of strings, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    Ok(v.into_iter().filter(|s| !s.is_empty()).collect())
}

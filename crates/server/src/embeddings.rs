//! `POST /v1/embeddings`: one pooled, L2-normalised embedding per input.

use crate::body::{type_name, Fields, JsonBody};
use crate::completions::ids_of;
use crate::error::{ApiError, ApiResult};
use crate::generation::f32_json;
use crate::params::check_model;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use shohin_engine::scheduler::{Event, Request, Task};
use std::collections::VecDeque;
use std::sync::Arc;

/// Inputs per request at most (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

pub async fn embeddings(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let f = Fields::new(&body);
    check_model(&f, &st)?;
    let base64 = match f.str("encoding_format")? {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("'encoding_format' = '{other}' is not supported: use float or base64"),
            ))
        }
    };
    if f.get("dimensions").is_some() {
        return Err(ApiError::invalid(
            "dimensions",
            "'dimensions' is not supported",
        ));
    }
    let inputs = parse_inputs(&f)?;
    // The hidden states depend on the adapters as the logits do.
    let lora = st.lora.set(crate::lora::parse_request(&f, &st)?);
    let st2 = st.clone();
    let prompts: Vec<Vec<u32>> = tokio::task::spawn_blocking(move || {
        inputs
            .into_iter()
            .map(|i| match i {
                Input::Text(t) => st2.tokenizer.encode(&t, true, true),
                Input::Ids(ids) => ids,
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing the input: {e}")))?;
    let pooling = st.pooling;
    // At most one request per slot in flight, so a long list does not fill
    // the queue; the receivers live in this future (dropped on disconnect).
    let window = st.engine.config().n_slots.max(1);
    let mut in_flight = VecDeque::new();
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(prompts.len());
    let mut prompt_tokens = 0;
    let mut next = 0;
    while out.len() < prompts.len() {
        while next < prompts.len() && in_flight.len() < window {
            let req = Request {
                prompt: prompts[next].clone(),
                task: Task::Embed { pooling },
                lora: lora.clone(),
            };
            let rx = st
                .engine
                .submit(req)
                .map_err(|e| ApiError::from_submit(e, &format!("input[{next}]")))?;
            in_flight.push_back(rx);
            next += 1;
        }
        let Some(mut rx) = in_flight.pop_front() else {
            break;
        };
        let mut emb = None;
        loop {
            match rx.recv().await {
                Some(Event::Embedding(e)) => emb = Some(e),
                Some(Event::Done(u)) => {
                    prompt_tokens += u.prompt_tokens;
                    break;
                }
                Some(Event::Error(e)) => return Err(ApiError::internal(e)),
                Some(Event::Token { .. }) => {}
                None => {
                    return Err(ApiError::unavailable(
                        "the request was cancelled: the server is shutting down",
                        "shutting_down",
                    ))
                }
            }
        }
        let emb = emb.ok_or_else(|| {
            ApiError::unavailable(
                "the request was cancelled: the server is shutting down",
                "shutting_down",
            )
        })?;
        out.push(emb);
    }
    let data: Vec<Value> = out
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = e.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::Array(e.iter().map(|&x| f32_json(x)).collect())
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "model": st.model_id,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
    .into_response())
}

enum Input {
    Text(String),
    Ids(Vec<u32>),
}

/// `input`: a string, an array of strings, an array of token ids, or an
/// array of arrays of token ids.
fn parse_inputs(f: &Fields<'_>) -> ApiResult<Vec<Input>> {
    let inputs = match f.get("input") {
        None => return Err(ApiError::invalid("input", "'input' is required")),
        Some(Value::String(s)) => vec![Input::Text(s.clone())],
        Some(Value::Array(a)) => {
            if a.is_empty() {
                return Err(ApiError::invalid("input", "'input' is empty"));
            }
            if a.len() > MAX_INPUTS {
                return Err(ApiError::invalid(
                    "input",
                    format!(
                        "'input' has {} entries; at most {MAX_INPUTS} are allowed",
                        a.len()
                    ),
                ));
            }
            if a.iter().all(Value::is_number) {
                vec![Input::Ids(ids_of(a, "input")?)]
            } else {
                a.iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::String(s) => Ok(Input::Text(s.clone())),
                        Value::Array(ids) => ids_of(ids, &format!("input[{i}]")).map(Input::Ids),
                        other => Err(ApiError::invalid(
                            format!("input[{i}]"),
                            format!(
                                "'input[{i}]' must be a string or an array of token ids, got {}",
                                type_name(other)
                            ),
                        )),
                    })
                    .collect::<ApiResult<Vec<_>>>()?
            }
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "input",
                format!("'input' must be a string or an array, got {}", type_name(v)),
            ))
        }
    };
    Ok(inputs)
}

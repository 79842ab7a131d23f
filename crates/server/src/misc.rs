//! `/health`, `/v1/models`, `/tokenize`, `/detokenize`, and the JSON
//! answers for unknown routes and methods.

use crate::body::{token_id, type_name, Fields, JsonBody};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

fn model_object(st: &AppState) -> Value {
    json!({
        "id": st.model_id,
        "object": "model",
        "created": st.created,
        "owned_by": "shohin",
    })
}

pub async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"object": "list", "data": [model_object(&st)]}))
}

pub async fn model(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if st.model_names.contains(&id) {
        Ok(Json(model_object(&st)))
    } else {
        Err(
            ApiError::not_found(format!("The model '{id}' does not exist"))
                .param("model")
                .code("model_not_found"),
        )
    }
}

/// llama-server's `/tokenize`: `{content, add_special = false,
/// parse_special = true, with_pieces = false}` → `{tokens}`.
pub async fn tokenize(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let f = Fields::new(&body);
    let content = f
        .str("content")?
        .ok_or_else(|| ApiError::invalid("content", "'content' is required"))?
        .to_string();
    let add_special = f.bool("add_special")?.unwrap_or(false);
    let parse_special = f.bool("parse_special")?.unwrap_or(true);
    let with_pieces = f.bool("with_pieces")?.unwrap_or(false);
    let st2 = st.clone();
    let ids = tokio::task::spawn_blocking(move || {
        st2.tokenizer.encode(&content, add_special, parse_special)
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing: {e}")))?;
    let tokens: Vec<Value> = if with_pieces {
        ids.iter()
            .map(|&id| {
                let b = st.tokenizer.token_bytes(id).unwrap_or(&[]);
                let piece = match std::str::from_utf8(b) {
                    Ok(s) => json!(s),
                    Err(_) => json!(b),
                };
                json!({"id": id, "piece": piece})
            })
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(Json(json!({"tokens": tokens})))
}

/// llama-server's `/detokenize`: `{tokens}` → `{content}`.
pub async fn detokenize(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let f = Fields::new(&body);
    let arr = match f.get("tokens") {
        None => return Err(ApiError::invalid("tokens", "'tokens' is required")),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::invalid(
                "tokens",
                format!(
                    "'tokens' must be an array of token ids, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    let n_vocab = st.tokenizer.n_vocab();
    let mut ids = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        let id = token_id(v, || format!("tokens[{i}]"))?;
        if id as usize >= n_vocab {
            return Err(ApiError::invalid(
                format!("tokens[{i}]"),
                format!("token id {id} is out of the vocabulary (size {n_vocab})"),
            ));
        }
        ids.push(id);
    }
    let content = st
        .tokenizer
        .decode(&ids)
        .map_err(|e| ApiError::invalid("tokens", e.to_string()))?;
    Ok(Json(json!({"content": content})))
}

pub async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::not_found(format!("Unknown request URL: {method} {}", uri.path()))
        .code("unknown_url")
        .into_response()
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .code("method_not_allowed")
    .into_response()
}

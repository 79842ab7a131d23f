//! `POST /v1/completions`: the prompt completed as-is (special tokens in
//! the text are parsed, no chat template), legacy `logprobs`.

use crate::body::{token_id, type_name, Fields, JsonBody};
use crate::chat::generate;
use crate::error::{ApiError, ApiResult};
use crate::generation::Meta;
use crate::params::{check_model, parse_generation, Flavor};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;

pub async fn completions(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let f = Fields::new(&body);
    check_model(&f, &st)?;
    let prompt = parse_prompt(&f)?;
    let g = parse_generation(&f, &st, Flavor::Text)?;
    let prompt = match prompt {
        Prompt::Ids(ids) => ids,
        Prompt::Text(t) => {
            let st2 = st.clone();
            tokio::task::spawn_blocking(move || st2.tokenizer.encode(&t, true, true))
                .await
                .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))?
        }
    };
    let meta = Meta::new(
        "cmpl-",
        st.model_id.clone(),
        g.n,
        g.params.logprobs.is_some(),
        g.include_usage,
    );
    generate(st, prompt, g, meta, "prompt").await
}

enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

/// `prompt`: a string, an array of one string, an array of token ids, or
/// an array of one array of token ids.
fn parse_prompt(f: &Fields<'_>) -> ApiResult<Prompt> {
    let one_only = || ApiError::invalid("prompt", "only one prompt per request is supported");
    match f.get("prompt") {
        None => Err(ApiError::invalid("prompt", "'prompt' is required")),
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) => match a.as_slice() {
            [] => Err(ApiError::invalid("prompt", "'prompt' is empty")),
            [Value::String(s)] => Ok(Prompt::Text(s.clone())),
            [Value::Array(ids)] => ids_of(ids, "prompt[0]").map(Prompt::Ids),
            [Value::Number(_), ..] => ids_of(a, "prompt").map(Prompt::Ids),
            [Value::String(_) | Value::Array(_), ..] => Err(one_only()),
            [other, ..] => Err(ApiError::invalid(
                "prompt[0]",
                format!(
                    "'prompt[0]' must be a string, a token id or an array of token ids, got {}",
                    type_name(other)
                ),
            )),
        },
        Some(v) => Err(ApiError::invalid(
            "prompt",
            format!(
                "'prompt' must be a string or an array of token ids, got {}",
                type_name(v)
            ),
        )),
    }
}

pub fn ids_of(a: &[Value], param: &str) -> ApiResult<Vec<u32>> {
    a.iter()
        .enumerate()
        .map(|(i, v)| token_id(v, || format!("{param}[{i}]")))
        .collect()
}

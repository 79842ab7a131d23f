//! `POST /v1/chat/completions`: messages rendered with the model's chat
//! template, then generated as `/v1/completions` does.

use crate::body::{type_name, Fields, JsonBody};
use crate::error::{ApiError, ApiResult};
use crate::generation::{self, Kind, Meta};
use crate::params::{check_model, parse_generation, Flavor, Generation};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use shohin_chat::{Message, RenderOptions};
use shohin_engine::scheduler::{Request, Task};
use std::sync::Arc;

pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let f = Fields::new(&body);
    check_model(&f, &st)?;
    let messages = parse_messages(&f)?;
    let enable_thinking = match f.object("chat_template_kwargs")? {
        Some(kw) => Fields::nested(kw, "chat_template_kwargs").bool("enable_thinking")?,
        None => None,
    };
    let g = parse_generation(&f, &st, Flavor::Chat)?;
    // Rendering and tokenizing a long conversation is CPU work: keep it
    // off the async workers.
    let st2 = st.clone();
    let prompt = tokio::task::spawn_blocking(move || {
        let tok = &st2.tokenizer;
        let text_of =
            |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
        let opts = RenderOptions {
            add_generation_prompt: true,
            enable_thinking,
            bos_token: text_of(tok.bos()),
            eos_token: text_of(tok.eos()),
        };
        let text = st2
            .template
            .render(&messages, &opts)
            .map_err(|e| ApiError::invalid("messages", format!("the chat template failed: {e}")))?;
        Ok::<_, ApiError>(tok.encode(&text, true, true))
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering the chat template: {e}")))??;
    let meta = Meta::new(
        Kind::Chat,
        st.model_id.clone(),
        g.n,
        g.params.logprobs.is_some(),
        g.include_usage,
    );
    generate(st, prompt, g, meta, "messages").await
}

/// Submits a generation and answers it, streamed or whole.
pub async fn generate(
    st: Arc<AppState>,
    prompt: Vec<u32>,
    g: Generation,
    meta: Meta,
    prompt_param: &str,
) -> ApiResult<Response> {
    let req = Request {
        prompt,
        task: Task::Generate {
            params: g.params,
            n: g.n,
        },
    };
    let mut rx = st
        .engine
        .submit(req)
        .map_err(|e| ApiError::from_submit(e, prompt_param))?;
    if g.stream {
        return Ok(generation::stream(meta, st.tokenizer.clone(), rx).into_response());
    }
    // `rx` lives in this future: if the client goes away, the server drops
    // the future and with it the receiver, which cancels the request.
    let (choices, usage) = generation::collect(&mut rx, g.n).await?;
    Ok(axum::Json(generation::response(&meta, &st.tokenizer, &choices, &usage)).into_response())
}

/// `messages`: a non-empty array of `{role, content}`; roles `system`,
/// `developer` (as `system`), `user`, `assistant`; content a string, an
/// array of text parts, or (assistant only) null.
fn parse_messages(f: &Fields<'_>) -> ApiResult<Vec<Message>> {
    let arr = match f.get("messages") {
        None => return Err(ApiError::invalid("messages", "'messages' is required")),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::invalid(
                "messages",
                format!("'messages' must be an array, got {}", type_name(v)),
            ))
        }
    };
    if arr.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "'messages' must contain at least one message",
        ));
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| parse_message(i, m))
        .collect()
}

fn parse_message(i: usize, m: &Value) -> ApiResult<Message> {
    let p = format!("messages[{i}]");
    let Value::Object(obj) = m else {
        return Err(ApiError::invalid(
            p.clone(),
            format!("'{p}' must be an object, got {}", type_name(m)),
        ));
    };
    let f = Fields::nested(obj, p.clone());
    let role = match f.str("role")? {
        None => {
            return Err(ApiError::invalid(
                f.name("role"),
                format!("'{}' is required", f.name("role")),
            ))
        }
        Some("system" | "developer") => "system",
        Some("user") => "user",
        Some("assistant") => "assistant",
        Some(other) => {
            return Err(ApiError::invalid(
                f.name("role"),
                format!(
                    "'{}' = '{other}' is not supported: use system, developer, user or assistant",
                    f.name("role")
                ),
            ))
        }
    };
    let cp = f.name("content");
    let content = match f.get("content") {
        None if role == "assistant" => String::new(),
        None => return Err(ApiError::invalid(cp.clone(), format!("'{cp}' is required"))),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{cp}[{j}]");
                let text = match part {
                    Value::Object(o) => {
                        let pf = Fields::nested(o, pp.clone());
                        match pf.str("type")? {
                            Some("text") => pf.str("text")?,
                            Some(t) => {
                                return Err(ApiError::invalid(
                                    pf.name("type"),
                                    format!(
                                    "content parts of type '{t}' are not supported; only 'text'"
                                ),
                                ))
                            }
                            None => None,
                        }
                        .ok_or_else(|| {
                            ApiError::invalid(
                                pp.clone(),
                                format!("'{pp}' must be {{\"type\": \"text\", \"text\": \"...\"}}"),
                            )
                        })?
                    }
                    other => {
                        return Err(ApiError::invalid(
                            pp.clone(),
                            format!("'{pp}' must be an object, got {}", type_name(other)),
                        ))
                    }
                };
                texts.push(text);
            }
            texts.join("\n")
        }
        Some(v) => {
            return Err(ApiError::invalid(
                cp.clone(),
                format!(
                    "'{cp}' must be a string or an array of text parts, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    Ok(Message::new(role, content))
}

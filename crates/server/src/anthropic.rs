//! `POST /v1/messages`: Anthropic's Messages API. `system` and `messages`
//! (text, `tool_use` and `tool_result` blocks) become chat messages,
//! `tools`/`tool_choice` and `thinking` map onto the chat path's tools and
//! `enable_thinking`; the turn runs through [`conversation::start`] and its
//! pieces become content blocks (thinking, text, tool_use), whole or
//! streamed as Anthropic's events. Errors use Anthropic's shape,
//! `{"type": "error", "error": {"type", "message"}}`.

mod output;

use crate::body::{type_name, Fields, JsonBody};
use crate::conversation::{self, Conversation};
use crate::error::{ApiError, ApiResult};
use crate::params::{check_model, parse_generation, Flavor, MAX_STOP};
use crate::responses::text_parts;
use crate::state::AppState;
use crate::tools::{self, ToolChoice};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use shohin_chat::{Message, ToolCall};
use std::sync::Arc;

/// Anthropic's error body, `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(e: &ApiError) -> Value {
    let kind = match e.status {
        StatusCode::BAD_REQUEST => "invalid_request_error",
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::NOT_FOUND => "not_found_error",
        StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
        _ => "api_error",
    };
    // Anthropic's errors have no `param`: the message names the field.
    let message = match &e.param {
        Some(p) if !e.message.contains(p.as_str()) => format!("{p}: {}", e.message),
        _ => e.message.clone(),
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// An error as Anthropic answers it, with the same status.
pub fn error_response(e: ApiError) -> Response {
    let mut r = (e.status, axum::Json(error_body(&e))).into_response();
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

pub async fn messages(
    State(st): State<Arc<AppState>>,
    body: Result<JsonBody, ApiError>,
) -> Response {
    let r = match body {
        Ok(JsonBody(b)) => handle(st, b).await,
        Err(e) => Err(e),
    };
    r.unwrap_or_else(error_response)
}

async fn handle(st: Arc<AppState>, body: serde_json::Map<String, Value>) -> ApiResult<Response> {
    let f = Fields::new(&body);
    check_model(&f, &st)?;
    if f.get("max_tokens").is_none() {
        return Err(ApiError::invalid("max_tokens", "'max_tokens' is required"));
    }
    let mut messages = Vec::new();
    if f.get("system").is_some() {
        let s = text_parts(&f, "system", &["text"])?;
        messages.push(Message::new("system", s));
    }
    parse_messages(&f, &mut messages)?;
    let enable_thinking = match f.object("thinking")? {
        None => None,
        Some(t) => match Fields::nested(t, "thinking").str("type")? {
            Some("enabled" | "adaptive") => Some(true),
            Some("disabled") => Some(false),
            Some(other) => {
                return Err(ApiError::invalid(
                    "thinking.type",
                    format!("'thinking.type' = '{other}' is not one of enabled, disabled"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    "thinking.type",
                    "'thinking.type' is required",
                ))
            }
        },
    };
    let tools = parse_tools(&f)?;
    let mut g = parse_generation(&f, &st, Flavor::Chat)?;
    if g.n != 1 {
        return Err(ApiError::invalid("n", "'n' is not a Messages field"));
    }
    let stops = parse_stops(&f)?;
    g.params.stop = stops.clone();
    let conv = Conversation {
        messages,
        tools,
        enable_thinking,
    };
    let started = conversation::start(&st, conv, g, "messages").await?;
    let out = output::Output::new(st.model_id.clone(), stops);
    if started.stream {
        return Ok(output::stream(out, started.turn).into_response());
    }
    // The turn (and its receiver) lives in this future: a client that goes
    // away drops it, which cancels the request.
    Ok(axum::Json(output::collect(out, started.turn).await?).into_response())
}

fn parse_stops(f: &Fields<'_>) -> ApiResult<Vec<String>> {
    match f.get("stop_sequences") {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= MAX_STOP => a
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_str() != Some(""))
            .map(|(i, s)| {
                s.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid(
                        format!("stop_sequences[{i}]"),
                        format!(
                            "'stop_sequences[{i}]' must be a string, got {}",
                            type_name(s)
                        ),
                    )
                })
            })
            .collect(),
        Some(Value::Array(a)) => Err(ApiError::invalid(
            "stop_sequences",
            format!(
                "'stop_sequences' has {} entries; at most {MAX_STOP} are allowed",
                a.len()
            ),
        )),
        Some(v) => Err(ApiError::invalid(
            "stop_sequences",
            format!(
                "'stop_sequences' must be an array of strings, got {}",
                type_name(v)
            ),
        )),
    }
}

/// `tools` (`{"name", "description", "input_schema"}`) and `tool_choice`
/// (`{"type": "auto"|"any"|"tool"|"none", "name", "disable_parallel_tool_use"}`).
fn parse_tools(f: &Fields<'_>) -> ApiResult<tools::Tools> {
    let list = tools::parse_list(f.get("tools"), |tf| {
        match tf.str("type")? {
            None | Some("custom") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    tf.name("type"),
                    format!("tools of type '{other}' are not supported; only client tools with an input_schema"),
                ))
            }
        }
        if tf.get("input_schema").is_none() {
            return Err(ApiError::invalid(
                tf.name("input_schema"),
                format!("'{}' is required", tf.name("input_schema")),
            ));
        }
        let mut tool = tools::tool_from(tf)?;
        tool.parameters = tools::parameters_of(tf, "input_schema")?;
        Ok(tool)
    })?;
    let mut parallel = true;
    let choice = match f.object("tool_choice")? {
        None => ToolChoice::Auto,
        Some(o) => {
            let cf = Fields::nested(o, "tool_choice");
            parallel = !cf.bool("disable_parallel_tool_use")?.unwrap_or(false);
            match cf.str("type")? {
                Some("auto") => ToolChoice::Auto,
                Some("any") => ToolChoice::Required,
                Some("none") => ToolChoice::None,
                Some("tool") => ToolChoice::Named(
                    cf.str("name")?
                        .ok_or_else(|| {
                            ApiError::invalid(
                                "tool_choice.name",
                                "'tool_choice.name' is required when 'tool_choice.type' is 'tool'",
                            )
                        })?
                        .to_string(),
                ),
                Some(other) => {
                    return Err(ApiError::invalid(
                        "tool_choice.type",
                        format!(
                            "'tool_choice.type' = '{other}' is not one of auto, any, tool, none"
                        ),
                    ))
                }
                None => {
                    return Err(ApiError::invalid(
                        "tool_choice.type",
                        "'tool_choice.type' is required",
                    ))
                }
            }
        }
    };
    tools::resolve(list, choice, parallel, "tool_choice")
}

/// `messages`: alternating `user` / `assistant` turns, content a string or
/// blocks. `tool_result` blocks become `tool` messages, `tool_use` blocks
/// the assistant's tool calls, `thinking` blocks its reasoning.
fn parse_messages(f: &Fields<'_>, out: &mut Vec<Message>) -> ApiResult<()> {
    let arr = match f.get("messages") {
        None => return Err(ApiError::invalid("messages", "'messages' is required")),
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "messages",
                "'messages' must contain at least one message",
            ))
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "messages",
                format!("'messages' must be an array, got {}", type_name(v)),
            ))
        }
    };
    for (i, m) in arr.iter().enumerate() {
        let p = format!("messages[{i}]");
        let Value::Object(o) = m else {
            return Err(ApiError::invalid(
                p.clone(),
                format!("'{p}' must be an object, got {}", type_name(m)),
            ));
        };
        let mf = Fields::nested(o, p);
        let role = match mf.str("role")? {
            Some(r @ ("user" | "assistant")) => r,
            Some(other) => {
                return Err(ApiError::invalid(
                    mf.name("role"),
                    format!(
                        "'{}' = '{other}' is not one of user, assistant",
                        mf.name("role")
                    ),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    mf.name("role"),
                    format!("'{}' is required", mf.name("role")),
                ))
            }
        };
        let cp = mf.name("content");
        let blocks = match mf.get("content") {
            None => return Err(ApiError::invalid(cp.clone(), format!("'{cp}' is required"))),
            Some(Value::String(s)) => {
                out.push(Message::new(role, s.clone()));
                continue;
            }
            Some(Value::Array(b)) => b,
            Some(v) => {
                return Err(ApiError::invalid(
                    cp.clone(),
                    format!(
                        "'{cp}' must be a string or an array of content blocks, got {}",
                        type_name(v)
                    ),
                ))
            }
        };
        let mut text: Vec<String> = Vec::new();
        let mut reasoning: Option<String> = None;
        let mut calls: Vec<ToolCall> = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bp = format!("{cp}[{j}]");
            let Value::Object(bo) = b else {
                return Err(ApiError::invalid(
                    bp.clone(),
                    format!("'{bp}' must be an object, got {}", type_name(b)),
                ));
            };
            let bf = Fields::nested(bo, bp);
            let req = |k: &str| {
                bf.str(k)?.ok_or_else(|| {
                    ApiError::invalid(bf.name(k), format!("'{}' is required", bf.name(k)))
                })
            };
            match (role, bf.str("type")?) {
                (_, Some("text")) => text.push(req("text")?.to_string()),
                ("assistant", Some("thinking")) => reasoning
                    .get_or_insert_with(String::new)
                    .push_str(req("thinking")?),
                ("assistant", Some("redacted_thinking")) => {}
                ("assistant", Some("tool_use")) => {
                    let input = match bf.get("input") {
                        None => json!({}),
                        Some(v @ Value::Object(_)) => v.clone(),
                        Some(v) => {
                            return Err(ApiError::invalid(
                                bf.name("input"),
                                format!(
                                    "'{}' must be an object, got {}",
                                    bf.name("input"),
                                    type_name(v)
                                ),
                            ))
                        }
                    };
                    calls.push(ToolCall::function(
                        req("id")?,
                        req("name")?,
                        input.to_string(),
                    ));
                }
                ("user", Some("tool_result")) => {
                    // Text before a result stays before it.
                    if !text.is_empty() {
                        out.push(Message::new("user", text.join("\n")));
                        text.clear();
                    }
                    let id = req("tool_use_id")?;
                    let mut content = if bf.get("content").is_some() {
                        text_parts(&bf, "content", &["text"])?
                    } else {
                        String::new()
                    };
                    if bf.bool("is_error")?.unwrap_or(false) {
                        content = format!("Error: {content}");
                    }
                    out.push(Message::new("tool", content).with_tool_call_id(id));
                }
                (_, Some(t)) => {
                    return Err(ApiError::invalid(
                        bf.name("type"),
                        format!(
                            "content blocks of type '{t}' are not supported in {role} messages"
                        ),
                    ))
                }
                (_, None) => {
                    return Err(ApiError::invalid(
                        bf.name("type"),
                        format!("'{}' is required", bf.name("type")),
                    ))
                }
            }
        }
        if role == "assistant" {
            let mut msg = Message::new("assistant", text.join("\n"));
            if let Some(r) = reasoning {
                msg = msg.with_reasoning_content(r);
            }
            if !calls.is_empty() {
                msg = msg.with_tool_calls(calls);
            }
            out.push(msg);
        } else if !text.is_empty() || out.last().is_none_or(|m| m.role != "tool") {
            out.push(Message::new("user", text.join("\n")));
        }
    }
    Ok(())
}

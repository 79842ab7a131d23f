//! OpenAI chat `messages`: roles `system` / `developer` (as `system`),
//! `user`, `assistant` (with `tool_calls` and `reasoning_content`), `tool`
//! (with `tool_call_id`); content a string, an array of text parts, or
//! null where OpenAI allows it.

use crate::body::{type_name, Fields};
use crate::error::{ApiError, ApiResult};
use serde_json::Value;
use shohin_chat::{Message, ToolCall};

/// `messages`: a non-empty array of `{role, content}`; roles `system`,
/// `developer` (as `system`), `user`, `assistant`; content a string, an
/// array of text parts, or (assistant only) null.
pub fn parse_messages(f: &Fields<'_>) -> ApiResult<Vec<Message>> {
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
        Some("tool") => "tool",
        Some(other) => {
            return Err(ApiError::invalid(
                f.name("role"),
                format!(
                "'{}' = '{other}' is not supported: use system, developer, user, assistant or tool",
                f.name("role")
            ),
            ))
        }
    };
    let cp = f.name("content");
    let content = match f.get("content") {
        None | Some(Value::Null) if role == "assistant" => String::new(),
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
    let mut msg = Message::new(role, content);
    if role == "assistant" {
        if let Some(r) = f.str("reasoning_content")? {
            msg = msg.with_reasoning_content(r);
        }
        match f.get("tool_calls") {
            None | Some(Value::Null) => {}
            Some(Value::Array(calls)) => {
                let calls = calls
                    .iter()
                    .enumerate()
                    .map(|(j, c)| tool_call(&f.name("tool_calls"), j, c))
                    .collect::<ApiResult<Vec<_>>>()?;
                if !calls.is_empty() {
                    msg = msg.with_tool_calls(calls);
                }
            }
            Some(v) => {
                return Err(ApiError::invalid(
                    f.name("tool_calls"),
                    format!(
                        "'{}' must be an array, got {}",
                        f.name("tool_calls"),
                        type_name(v)
                    ),
                ))
            }
        }
    }
    if role == "tool" {
        let id = f.str("tool_call_id")?.ok_or_else(|| {
            ApiError::invalid(
                f.name("tool_call_id"),
                format!("'{}' is required for role 'tool'", f.name("tool_call_id")),
            )
        })?;
        msg = msg.with_tool_call_id(id);
    }
    if let Some(n) = f.str("name")? {
        msg = msg.with_name(n);
    }
    Ok(msg)
}

/// `{"id", "type": "function", "function": {"name", "arguments"}}`.
fn tool_call(param: &str, j: usize, c: &Value) -> ApiResult<ToolCall> {
    let p = format!("{param}[{j}]");
    let Value::Object(o) = c else {
        return Err(ApiError::invalid(
            p.clone(),
            format!("'{p}' must be an object, got {}", type_name(c)),
        ));
    };
    let cf = Fields::nested(o, p.clone());
    let id = cf.str("id")?.unwrap_or_default();
    let func = cf.object("function")?.ok_or_else(|| {
        ApiError::invalid(
            cf.name("function"),
            format!("'{}' is required", cf.name("function")),
        )
    })?;
    let ff = Fields::nested(func, cf.name("function"));
    let name = ff.str("name")?.ok_or_else(|| {
        ApiError::invalid(
            ff.name("name"),
            format!("'{}' is required", ff.name("name")),
        )
    })?;
    // OpenAI sends the arguments as JSON text; an object is accepted too.
    let arguments = match ff.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(v) => {
            return Err(ApiError::invalid(
                ff.name("arguments"),
                format!(
                    "'{}' must be a string of JSON, got {}",
                    ff.name("arguments"),
                    type_name(v)
                ),
            ))
        }
    };
    Ok(ToolCall::function(id, name, arguments))
}

//! `POST /v1/responses`: OpenAI's Responses API, stateless. `input` (a
//! string or a list of message, `function_call` and `function_call_output`
//! items) and `instructions` become chat messages; `tools`, `tool_choice`,
//! `text.format` and `reasoning.effort` map onto the chat path's tools,
//! grammar and `enable_thinking`; the turn runs through
//! [`conversation::start`] like a chat completion and its pieces become
//! output items (reasoning, message, function calls), whole or streamed as
//! Responses' typed server-sent events.

mod output;

use crate::body::{type_name, Fields, JsonBody};
use crate::conversation::{self, Conversation};
use crate::error::{ApiError, ApiResult};
use crate::params::{check_model, parse_generation, Flavor, MAX_TOKENS_LIMIT};
use crate::state::AppState;
use crate::tools::{self, ToolChoice};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use shohin_chat::{Message, ToolCall};
use shohin_grammar::GrammarSpec;
use std::sync::Arc;

pub async fn responses(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let f = Fields::new(&body);
    check_model(&f, &st)?;
    for key in ["previous_response_id", "conversation", "prompt"] {
        if f.get(key).is_some() {
            return Err(ApiError::invalid(
                key,
                format!("'{key}' is not supported: this server keeps no responses; send the whole conversation as 'input'"),
            ));
        }
    }
    if f.bool("background")?.unwrap_or(false) {
        return Err(ApiError::invalid(
            "background",
            "'background' responses are not supported",
        ));
    }
    f.bool("store")?;
    let mut messages = Vec::new();
    if let Some(i) = f.str("instructions")? {
        messages.push(Message::new("system", i));
    }
    parse_input(&f, &mut messages)?;
    let enable_thinking = match f.object("reasoning")? {
        None => None,
        Some(r) => match Fields::nested(r, "reasoning").str("effort")? {
            None | Some("minimal" | "low" | "medium" | "high" | "xhigh") => None,
            Some("none") => Some(false),
            Some(other) => {
                return Err(ApiError::invalid(
                    "reasoning.effort",
                    format!("'reasoning.effort' = '{other}' is not one of none, minimal, low, medium, high, xhigh"),
                ))
            }
        },
    };
    let tools = parse_tools(&f)?;
    let mut g = parse_generation(&f, &st, Flavor::Chat)?;
    if g.n != 1 {
        return Err(ApiError::invalid("n", "'n' is not a Responses field"));
    }
    if let Some(m) = f.int("max_output_tokens", 1, MAX_TOKENS_LIMIT)? {
        g.params.max_tokens = m as usize;
    }
    let text_format = match f.object("text")? {
        None => None,
        Some(t) => Fields::nested(t, "text").object("format")?,
    };
    if let Some(tf) = text_format {
        g.grammar = parse_format(tf)?;
    }
    let echo = Echo {
        model: st.model_id.clone(),
        fields: echo_fields(&f, text_format),
    };
    let conv = Conversation {
        messages,
        tools,
        enable_thinking,
    };
    let started = conversation::start(&st, conv, g, "input").await?;
    if started.stream {
        return Ok(output::stream(echo, started.turn).into_response());
    }
    // The turn (and its receiver) lives in this future: a client that goes
    // away drops it, which cancels the request.
    Ok(axum::Json(output::collect(echo, started.turn).await?).into_response())
}

/// What the response object repeats of the request.
pub struct Echo {
    pub model: String,
    pub fields: Map<String, Value>,
}

fn echo_fields(f: &Fields<'_>, text_format: Option<&Map<String, Value>>) -> Map<String, Value> {
    let get = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
    let mut m = Map::new();
    m.insert("instructions".into(), get("instructions"));
    m.insert("max_output_tokens".into(), get("max_output_tokens"));
    m.insert(
        "parallel_tool_calls".into(),
        Value::Bool(
            f.get("parallel_tool_calls")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        ),
    );
    m.insert("previous_response_id".into(), Value::Null);
    m.insert(
        "reasoning".into(),
        json!({"effort": f.get("reasoning").and_then(|r| r.get("effort")).cloned(), "summary": null}),
    );
    m.insert("store".into(), Value::Bool(false));
    m.insert("temperature".into(), get("temperature"));
    m.insert(
        "text".into(),
        json!({"format": text_format.map_or(json!({"type": "text"}), |t| Value::Object(t.clone()))}),
    );
    m.insert(
        "tool_choice".into(),
        f.get("tool_choice").cloned().unwrap_or(json!("auto")),
    );
    m.insert("tools".into(), f.get("tools").cloned().unwrap_or(json!([])));
    m.insert("top_p".into(), get("top_p"));
    m.insert("truncation".into(), json!("disabled"));
    m.insert(
        "metadata".into(),
        f.get("metadata").cloned().unwrap_or(json!({})),
    );
    m.insert("user".into(), get("user"));
    m
}

/// `text.format`: `text`, `json_object`, or `json_schema` with `schema`.
fn parse_format(tf: &Map<String, Value>) -> ApiResult<Option<(GrammarSpec, &'static str)>> {
    let ff = Fields::nested(tf, "text.format");
    match ff.str("type")? {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some((GrammarSpec::JsonObject, "text.format"))),
        Some("json_schema") => {
            ff.bool("strict")?;
            ff.str("name")?;
            let schema =
                match ff.get("schema") {
                    Some(v @ Value::Object(_)) => v.clone(),
                    None => return Err(ApiError::invalid(
                        "text.format.schema",
                        "'text.format.schema' is required when 'text.format.type' is 'json_schema'",
                    )),
                    Some(v) => {
                        return Err(ApiError::invalid(
                            "text.format.schema",
                            format!(
                                "'text.format.schema' must be an object, got {}",
                                type_name(v)
                            ),
                        ))
                    }
                };
            Ok(Some((
                GrammarSpec::JsonSchema(schema),
                "text.format.schema",
            )))
        }
        Some(t) => Err(ApiError::invalid(
            "text.format.type",
            format!(
                "'text.format.type' = '{t}' is not supported: use text, json_object or json_schema"
            ),
        )),
    }
}

/// `tools` (`{"type": "function", "name", "description", "parameters",
/// "strict"}`), `tool_choice` and `parallel_tool_calls`.
fn parse_tools(f: &Fields<'_>) -> ApiResult<tools::Tools> {
    let list = tools::parse_list(f.get("tools"), |tf| {
        tools::require_type(tf, "function")?;
        tf.bool("strict")?;
        tools::tool_from(tf)
    })?;
    let choice = match f.get("tool_choice") {
        None => ToolChoice::Auto,
        Some(Value::String(s)) => tools::choice_of(s)?,
        Some(Value::Object(o)) => {
            let cf = Fields::nested(o, "tool_choice");
            match (cf.str("type")?, cf.str("name")?) {
                (Some("function"), Some(name)) => ToolChoice::Named(name.to_string()),
                (Some("function"), None) => {
                    return Err(ApiError::invalid(
                        "tool_choice.name",
                        "'tool_choice.name' is required",
                    ))
                }
                _ => {
                    return Err(ApiError::invalid(
                        "tool_choice.type",
                        "'tool_choice' must be {\"type\": \"function\", \"name\": ...}",
                    ))
                }
            }
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "tool_choice",
                format!(
                    "'tool_choice' must be a string or an object, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    let parallel = f.bool("parallel_tool_calls")?.unwrap_or(true);
    tools::resolve(list, choice, parallel, "tool_choice")
}

/// `input`: a string (one user message) or a non-empty list of items.
fn parse_input(f: &Fields<'_>, out: &mut Vec<Message>) -> ApiResult<()> {
    let items = match f.get("input") {
        None => return Err(ApiError::invalid("input", "'input' is required")),
        Some(Value::String(s)) => {
            out.push(Message::new("user", s.clone()));
            return Ok(());
        }
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "input",
                "'input' must contain at least one item",
            ))
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "input",
                format!(
                    "'input' must be a string or an array of items, got {}",
                    type_name(v)
                ),
            ))
        }
    };
    for (i, item) in items.iter().enumerate() {
        let p = format!("input[{i}]");
        let Value::Object(o) = item else {
            return Err(ApiError::invalid(
                p.clone(),
                format!("'{p}' must be an object, got {}", type_name(item)),
            ));
        };
        let itf = Fields::nested(o, p);
        let kind = itf.str("type")?;
        match kind {
            None | Some("message") => {
                let role = match itf.str("role")? {
                    Some("system" | "developer") => "system",
                    Some(r @ ("user" | "assistant")) => r,
                    Some(other) => {
                        return Err(ApiError::invalid(
                            itf.name("role"),
                            format!("'{}' = '{other}' is not one of user, system, developer, assistant", itf.name("role")),
                        ))
                    }
                    None => {
                        return Err(ApiError::invalid(
                            itf.name("role"),
                            format!("'{}' is required", itf.name("role")),
                        ))
                    }
                };
                let text = text_parts(&itf, "content", &["input_text", "output_text", "text"])?;
                out.push(Message::new(role, text));
            }
            Some("function_call") => {
                let req = |k: &str| {
                    itf.str(k)?.ok_or_else(|| {
                        ApiError::invalid(itf.name(k), format!("'{}' is required", itf.name(k)))
                    })
                };
                let call = ToolCall::function(
                    req("call_id")?,
                    req("name")?,
                    itf.str("arguments")?.unwrap_or("{}"),
                );
                // Calls (and the text before them) of one turn are one
                // assistant message for the template.
                match out.last_mut() {
                    Some(m) if m.role == "assistant" => {
                        m.tool_calls.get_or_insert_with(Vec::new).push(call)
                    }
                    _ => out.push(Message::new("assistant", "").with_tool_calls(vec![call])),
                }
            }
            Some("function_call_output") => {
                let id = itf.str("call_id")?.ok_or_else(|| {
                    ApiError::invalid(
                        itf.name("call_id"),
                        format!("'{}' is required", itf.name("call_id")),
                    )
                })?;
                let text = text_parts(&itf, "output", &["input_text", "output_text", "text"])?;
                out.push(Message::new("tool", text).with_tool_call_id(id));
            }
            // Reasoning from earlier turns is not shown to the model again.
            Some("reasoning") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    itf.name("type"),
                    format!(
                        "input items of type '{other}' are not supported: use message, function_call, function_call_output or reasoning"
                    ),
                ))
            }
        }
    }
    if out.iter().all(|m| m.role == "system") {
        return Err(ApiError::invalid(
            "input",
            "'input' has no user, assistant or tool item",
        ));
    }
    Ok(())
}

/// `key`: a string, or an array of text parts whose `type` is one of
/// `kinds` (joined with newlines).
pub(crate) fn text_parts(f: &Fields<'_>, key: &str, kinds: &[&str]) -> ApiResult<String> {
    let p = f.name(key);
    match f.get(key) {
        None => Err(ApiError::invalid(p.clone(), format!("'{p}' is required"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let pp = format!("{p}[{j}]");
                let Value::Object(o) = part else {
                    return Err(ApiError::invalid(
                        pp.clone(),
                        format!("'{pp}' must be an object, got {}", type_name(part)),
                    ));
                };
                let pf = Fields::nested(o, pp.clone());
                match pf.str("type")? {
                    Some(t) if kinds.contains(&t) => {}
                    Some(t) => {
                        return Err(ApiError::invalid(
                            pf.name("type"),
                            format!(
                                "content parts of type '{t}' are not supported; only {}",
                                kinds.join(", ")
                            ),
                        ))
                    }
                    None => {
                        return Err(ApiError::invalid(
                            pf.name("type"),
                            format!("'{}' is required", pf.name("type")),
                        ))
                    }
                }
                let text = pf.str("text")?.ok_or_else(|| {
                    ApiError::invalid(
                        pf.name("text"),
                        format!("'{}' is required", pf.name("text")),
                    )
                })?;
                texts.push(text);
            }
            Ok(texts.join("\n"))
        }
        Some(v) => Err(ApiError::invalid(
            p.clone(),
            format!(
                "'{p}' must be a string or an array of text parts, got {}",
                type_name(v)
            ),
        )),
    }
}

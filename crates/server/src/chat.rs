//! `POST /v1/chat/completions`: messages (and tools) rendered with the
//! model's chat template, the output parsed into `reasoning_content`,
//! `content` and `tool_calls`, whole or streamed as OpenAI's chunks.
//! `generate` is the plain path `/v1/completions` uses.

use crate::body::{Fields, JsonBody};
use crate::conversation::{self, Conversation, Started};
use crate::error::{ApiError, ApiResult};
use crate::generation::{self, chat_logprob, usage_json, Meta};
use crate::messages::parse_messages;
use crate::params::{check_model, parse_generation, Flavor, Generation};
use crate::state::AppState;
use crate::tools;
use crate::turn::{self, ChoiceOut, Piece, TurnEvent};
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use shohin_engine::scheduler::{Request, Task};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

pub async fn chat_completions(
    State(st): State<Arc<AppState>>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let f = Fields::new(&body);
    check_model(&f, &st)?;
    let messages = parse_messages(&f)?;
    let mut enable_thinking = match f.object("chat_template_kwargs")? {
        Some(kw) => Fields::nested(kw, "chat_template_kwargs").bool("enable_thinking")?,
        None => None,
    };
    match f.str("reasoning_effort")? {
        None => {}
        Some("none") => enable_thinking = Some(false),
        Some("minimal" | "low" | "medium" | "high") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "reasoning_effort",
                format!(
                    "'reasoning_effort' = '{other}' is not one of none, minimal, low, medium, high"
                ),
            ))
        }
    }
    let tools = tools::parse_openai(&f)?;
    let g = parse_generation(&f, &st, Flavor::Chat)?;
    let conv = Conversation {
        messages,
        tools,
        enable_thinking,
    };
    let started = conversation::start(&st, conv, g, "messages").await?;
    let meta = Meta::new(
        "chatcmpl-",
        st.model_id.clone(),
        started.n,
        started.logprobs,
        started.include_usage,
    );
    if started.stream {
        return Ok(stream(meta, st, started).into_response());
    }
    // The turn (and its receiver) lives in this future: if the client goes
    // away, the server drops it, which cancels the request.
    let (choices, usage) = turn::collect(started.turn, started.n).await?;
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| choice_json(&st, &meta, i, c))
        .collect();
    Ok(axum::Json(json!({
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": usage_json(&usage),
    }))
    .into_response())
}

fn calls_json(calls: &[turn::Call]) -> Value {
    calls
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            })
        })
        .collect()
}

fn choice_json(st: &AppState, meta: &Meta, i: usize, c: &ChoiceOut) -> Value {
    let mut message = json!({
        "role": "assistant",
        // OpenAI: null content when the turn is only tool calls.
        "content": if c.content.is_empty() && !c.calls.is_empty() { Value::Null } else { Value::from(c.content.clone()) },
        "refusal": null,
    });
    if let Some(r) = &c.reasoning {
        message["reasoning_content"] = Value::from(r.clone());
    }
    if !c.calls.is_empty() {
        message["tool_calls"] = calls_json(&c.calls);
    }
    let logprobs = if meta.logprobs {
        json!({
            "content": c.logprobs.iter().map(|l| chat_logprob(&st.tokenizer, l)).collect::<Vec<_>>(),
            "refusal": null,
        })
    } else {
        Value::Null
    };
    json!({
        "index": i,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": c.finish.openai(),
    })
}

/// The delta of one piece, as OpenAI streams it: `content`,
/// `reasoning_content`, or a `tool_calls` entry (the first with id, type
/// and name and empty arguments, then argument fragments).
fn piece_delta(p: &Piece) -> Value {
    match p {
        Piece::Content(t) => json!({"content": t}),
        Piece::Reasoning(t) => json!({"reasoning_content": t}),
        Piece::CallStart { call, id, name } => json!({"tool_calls": [{
            "index": call, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""},
        }]}),
        Piece::CallArgs { call, fragment } => json!({"tool_calls": [{
            "index": call, "function": {"arguments": fragment},
        }]}),
    }
}

struct ChatStream {
    meta: Meta,
    st: Arc<AppState>,
    started: Started,
    pending: VecDeque<String>,
    done: bool,
}

impl ChatStream {
    fn envelope(&self, choices: Vec<Value>) -> Value {
        let mut v = json!({
            "id": self.meta.id,
            "object": "chat.completion.chunk",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": choices,
        });
        if self.meta.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    fn chunk(&mut self, index: usize, delta: Value, logprobs: Value, finish: Value) {
        let c = self.envelope(vec![json!({
            "index": index,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": finish,
        })]);
        self.pending.push_back(c.to_string());
    }

    fn event(&mut self, e: TurnEvent) {
        match e {
            TurnEvent::Pieces {
                index,
                pieces,
                logprob,
            } => {
                let mut lp = match logprob {
                    Some(lp) if self.meta.logprobs => json!({
                        "content": [chat_logprob(&self.st.tokenizer, &lp)],
                        "refusal": null,
                    }),
                    _ => Value::Null,
                };
                for p in &pieces {
                    self.chunk(index, piece_delta(p), std::mem::take(&mut lp), Value::Null);
                }
                if !lp.is_null() {
                    self.chunk(index, json!({"content": ""}), lp, Value::Null);
                }
            }
            TurnEvent::Finish { index, reason, .. } => {
                self.chunk(index, json!({}), Value::Null, Value::from(reason.openai()));
            }
            TurnEvent::Done(u) => {
                if self.meta.include_usage {
                    let mut c = self.envelope(Vec::new());
                    c["usage"] = usage_json(&u);
                    self.pending.push_back(c.to_string());
                }
            }
        }
    }
}

/// Streams the turn; the receiver lives in the body stream, so a client
/// that goes away drops it and the engine cancels the request.
fn stream(
    meta: Meta,
    st: Arc<AppState>,
    started: Started,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut cs = ChatStream {
        meta,
        st,
        started,
        pending: VecDeque::new(),
        done: false,
    };
    for i in 0..cs.started.n {
        cs.chunk(
            i,
            json!({"role": "assistant", "content": "", "refusal": null}),
            Value::Null,
            Value::Null,
        );
    }
    let s = futures_util::stream::unfold(cs, |mut cs| async move {
        loop {
            if let Some(data) = cs.pending.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), cs));
            }
            if cs.done {
                return None;
            }
            match cs.started.turn.next().await {
                Ok(Some(e)) => cs.event(e),
                Ok(None) => {
                    cs.pending.push_back("[DONE]".to_string());
                    cs.done = true;
                }
                Err(e) => {
                    cs.pending.push_back(e.body().to_string());
                    cs.pending.push_back("[DONE]".to_string());
                    cs.done = true;
                }
            }
        }
    });
    Sse::new(s)
}

/// Compiles the request's grammar (if any) off the async workers.
pub async fn with_constraint(st: &Arc<AppState>, g: &mut Generation) -> ApiResult<()> {
    if let Some((spec, param)) = g.grammar.take() {
        let st2 = st.clone();
        let c = tokio::task::spawn_blocking(move || st2.compile_grammar(&spec, param))
            .await
            .map_err(|e| ApiError::internal(format!("compiling the grammar: {e}")))??;
        g.params.constraint = Some(c);
    }
    Ok(())
}

/// Submits a plain generation and answers it, streamed or whole.
pub async fn generate(
    st: Arc<AppState>,
    prompt: Vec<u32>,
    mut g: Generation,
    meta: Meta,
    prompt_param: &str,
) -> ApiResult<Response> {
    with_constraint(&st, &mut g).await?;
    let req = Request {
        prompt,
        task: Task::Generate {
            params: g.params,
            n: g.n,
        },
        lora: g.lora,
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

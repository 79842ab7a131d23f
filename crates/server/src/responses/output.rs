//! A turn's pieces as Responses output items — a reasoning item, message
//! items with one `output_text` part, `function_call` items — built by one
//! accumulator for both answers, so the streamed events and the final
//! response object always agree. Streaming emits OpenAI's typed events
//! (`event: <type>` + `data: {"type", "sequence_number", ...}`).

use super::Echo;
use crate::error::{ApiError, ApiResult};
use crate::turn::{Finish, Piece, Turn, TurnEvent};
use axum::response::sse::{Event as SseEvent, Sse};
use serde_json::{json, Value};
use shohin_engine::scheduler::Usage;
use std::collections::VecDeque;
use std::convert::Infallible;

fn new_id(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Reasoning,
    Message,
    Call,
}

struct Output {
    echo: Echo,
    id: String,
    created_at: u64,
    items: Vec<Value>,
    open: Option<Open>,
    incomplete: bool,
    /// Whether events are wanted (streaming).
    stream: bool,
    events: VecDeque<(&'static str, Value)>,
    seq: u64,
}

impl Output {
    fn new(echo: Echo, stream: bool) -> Self {
        Self {
            echo,
            id: new_id("resp_"),
            created_at: crate::state::unix_now(),
            items: Vec::new(),
            open: None,
            incomplete: false,
            stream,
            events: VecDeque::new(),
            seq: 0,
        }
    }

    fn emit(&mut self, ty: &'static str, data: Value) {
        if !self.stream {
            return;
        }
        let mut data = data;
        data["type"] = Value::from(ty);
        data["sequence_number"] = Value::from(self.seq);
        self.seq += 1;
        self.events.push_back((ty, data));
    }

    fn last(&mut self) -> (usize, String) {
        let i = self.items.len() - 1;
        (i, self.items[i]["id"].as_str().unwrap_or("").to_string())
    }

    fn open_item(&mut self, kind: Open, item: Value) {
        self.close("completed");
        self.items.push(item.clone());
        self.open = Some(kind);
        let i = self.items.len() - 1;
        self.emit(
            "response.output_item.added",
            json!({"output_index": i, "item": item}),
        );
        let part = match kind {
            Open::Reasoning => json!({"type": "reasoning_text", "text": ""}),
            Open::Message => {
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
            }
            Open::Call => return,
        };
        let item_id = self.items[i]["id"].clone();
        self.items[i]["content"] = json!([part.clone()]);
        self.emit(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": i, "content_index": 0, "part": part}),
        );
    }

    fn piece(&mut self, p: Piece) {
        match p {
            Piece::Reasoning(t) => {
                if self.open != Some(Open::Reasoning) {
                    let item = json!({"type": "reasoning", "id": new_id("rs_"), "summary": [], "content": [], "status": "in_progress"});
                    self.open_item(Open::Reasoning, item);
                }
                self.text_delta(&t, "response.reasoning_text.delta");
            }
            Piece::Content(t) => {
                if t.is_empty() {
                    return;
                }
                if self.open != Some(Open::Message) {
                    self.open_message();
                }
                self.text_delta(&t, "response.output_text.delta");
            }
            Piece::CallStart { id, name, .. } => {
                let item = json!({
                    "type": "function_call", "id": new_id("fc_"), "call_id": id,
                    "name": name, "arguments": "", "status": "in_progress",
                });
                self.open_item(Open::Call, item);
            }
            Piece::CallArgs { fragment, .. } => {
                if self.open != Some(Open::Call) {
                    return;
                }
                let (i, item_id) = self.last();
                let a = &mut self.items[i]["arguments"];
                *a = Value::from(format!("{}{fragment}", a.as_str().unwrap_or("")));
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": i, "delta": fragment}),
                );
            }
        }
    }

    fn open_message(&mut self) {
        let item = json!({"type": "message", "id": new_id("msg_"), "status": "in_progress", "role": "assistant", "content": []});
        self.open_item(Open::Message, item);
    }

    fn text_delta(&mut self, t: &str, ty: &'static str) {
        let (i, item_id) = self.last();
        let text = &mut self.items[i]["content"][0]["text"];
        *text = Value::from(format!("{}{t}", text.as_str().unwrap_or("")));
        let mut ev = json!({"item_id": item_id, "output_index": i, "content_index": 0, "delta": t});
        if ty == "response.output_text.delta" {
            ev["logprobs"] = json!([]);
        }
        self.emit(ty, ev);
    }

    fn close(&mut self, status: &str) {
        let Some(kind) = self.open.take() else {
            return;
        };
        let (i, item_id) = self.last();
        match kind {
            Open::Reasoning | Open::Message => {
                let part = self.items[i]["content"][0].clone();
                let text = part["text"].clone();
                let (ty, mut ev) = if kind == Open::Message {
                    ("response.output_text.done", json!({"logprobs": []}))
                } else {
                    ("response.reasoning_text.done", json!({}))
                };
                ev["item_id"] = Value::from(item_id.clone());
                ev["output_index"] = Value::from(i);
                ev["content_index"] = Value::from(0);
                ev["text"] = text;
                self.emit(ty, ev);
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": i, "content_index": 0, "part": part}),
                );
            }
            Open::Call => {
                let ev = json!({
                    "item_id": item_id, "output_index": i,
                    "name": self.items[i]["name"], "arguments": self.items[i]["arguments"],
                });
                self.emit("response.function_call_arguments.done", ev);
            }
        }
        self.items[i]["status"] = Value::from(status);
        let item = self.items[i].clone();
        self.emit(
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
    }

    fn finish(&mut self, reason: Finish) {
        self.incomplete = reason == Finish::Length;
        self.close(if self.incomplete {
            "incomplete"
        } else {
            "completed"
        });
        // Always a message or a call, even when the model said nothing.
        if !self
            .items
            .iter()
            .any(|i| i["type"] == "message" || i["type"] == "function_call")
        {
            self.open_message();
            self.close("completed");
        }
    }

    fn status(&self) -> &'static str {
        if self.incomplete {
            "incomplete"
        } else {
            "completed"
        }
    }

    /// The response object; `usage` `None` while in progress.
    fn response(&self, usage: Option<&Usage>) -> Value {
        let mut r = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": if usage.is_some() { self.status() } else { "in_progress" },
            "error": null,
            "incomplete_details": if usage.is_some() && self.incomplete { json!({"reason": "max_output_tokens"}) } else { Value::Null },
            "model": self.echo.model,
            "output": if usage.is_some() { Value::from(self.items.clone()) } else { json!([]) },
            "usage": usage.map(|u| {
                let mut v = json!({
                    "input_tokens": u.prompt_tokens,
                    "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": 0},
                    "output_tokens": u.completion_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": u.prompt_tokens + u.completion_tokens,
                });
                crate::generation::add_draft(&mut v, u);
                v
            }),
        });
        if usage.is_some() {
            r["completed_at"] = Value::from(crate::state::unix_now());
        }
        for (k, v) in &self.echo.fields {
            r[k] = v.clone();
        }
        r
    }

    fn event(&mut self, e: TurnEvent) -> Option<Usage> {
        match e {
            TurnEvent::Pieces { pieces, .. } => pieces.into_iter().for_each(|p| self.piece(p)),
            TurnEvent::Finish { reason, .. } => self.finish(reason),
            TurnEvent::Done(u) => return Some(u),
        }
        None
    }
}

/// Runs the turn to its end: the response object.
pub async fn collect(echo: Echo, mut turn: Turn) -> ApiResult<Value> {
    let mut out = Output::new(echo, false);
    while let Some(e) = turn.next().await? {
        if let Some(u) = out.event(e) {
            return Ok(out.response(Some(&u)));
        }
    }
    Err(crate::turn::shutting_down())
}

struct Streaming {
    out: Output,
    turn: Turn,
    done: bool,
}

fn error_event(e: &ApiError, seq: u64) -> Value {
    json!({
        "type": "error", "sequence_number": seq,
        "code": e.code, "message": e.message, "param": e.param,
    })
}

/// Streams the turn as Responses events; the turn (with the engine's
/// receiver) lives in the body stream, so a client that goes away cancels.
pub fn stream(
    echo: Echo,
    turn: Turn,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut out = Output::new(echo, true);
    let r = out.response(None);
    out.emit("response.created", json!({"response": r}));
    out.emit("response.in_progress", json!({"response": r}));
    let s = Streaming {
        out,
        turn,
        done: false,
    };
    let s = futures_util::stream::unfold(s, |mut s| async move {
        loop {
            if let Some((ty, data)) = s.out.events.pop_front() {
                let ev = SseEvent::default().event(ty).data(data.to_string());
                return Some((Ok(ev), s));
            }
            if s.done {
                return None;
            }
            match s.turn.next().await {
                Ok(Some(e)) => {
                    if let Some(u) = s.out.event(e) {
                        let r = s.out.response(Some(&u));
                        let ty = if s.out.incomplete {
                            "response.incomplete"
                        } else {
                            "response.completed"
                        };
                        s.out.emit(ty, json!({"response": r}));
                        s.done = true;
                    }
                }
                Ok(None) => s.done = true,
                Err(e) => {
                    let ev = error_event(&e, s.out.seq);
                    s.out.events.push_back(("error", ev));
                    s.done = true;
                }
            }
        }
    });
    Sse::new(s)
}

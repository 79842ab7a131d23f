//! A turn's pieces as Anthropic content blocks — thinking, text, tool_use —
//! built by one accumulator for both answers, so the streamed events and
//! the final message always agree. Streaming sends Anthropic's events
//! (`event: <type>` + `data: {"type": <type>, ...}`).

use crate::error::ApiResult;
use crate::turn::{call_id, shutting_down, Finish, Piece, Turn, TurnEvent};
use axum::response::sse::{Event as SseEvent, Sse};
use serde_json::{json, Value};
use shohin_engine::scheduler::Usage;
use std::collections::VecDeque;
use std::convert::Infallible;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Thinking,
    Text,
    ToolUse,
}

pub struct Output {
    id: String,
    model: String,
    blocks: Vec<Value>,
    /// The open tool_use block's argument text.
    args: String,
    open: Option<Open>,
    stop_reason: &'static str,
    stop_sequence: Option<String>,
    /// The request's stop sequences (the engine reports which one ended
    /// the turn by its index).
    stops: Vec<String>,
    stream: bool,
    events: VecDeque<(&'static str, Value)>,
}

impl Output {
    pub fn new(model: String, stops: Vec<String>) -> Self {
        Self {
            id: format!("msg_{:032x}", rand::random::<u128>()),
            model,
            blocks: Vec::new(),
            args: String::new(),
            open: None,
            stop_reason: "end_turn",
            stop_sequence: None,
            stops,
            stream: false,
            events: VecDeque::new(),
        }
    }

    fn emit(&mut self, ty: &'static str, mut data: Value) {
        if self.stream {
            data["type"] = Value::from(ty);
            self.events.push_back((ty, data));
        }
    }

    fn open_block(&mut self, kind: Open, block: Value) {
        self.close();
        self.blocks.push(block.clone());
        self.open = Some(kind);
        let index = self.blocks.len() - 1;
        self.emit(
            "content_block_start",
            json!({"index": index, "content_block": block}),
        );
    }

    fn append(&mut self, key: &str, t: &str, delta: Value) {
        let index = self.blocks.len() - 1;
        let v = &mut self.blocks[index][key];
        *v = Value::from(format!("{}{t}", v.as_str().unwrap_or("")));
        self.emit(
            "content_block_delta",
            json!({"index": index, "delta": delta}),
        );
    }

    fn piece(&mut self, p: Piece) {
        match p {
            Piece::Reasoning(t) => {
                if self.open != Some(Open::Thinking) {
                    let b = json!({"type": "thinking", "thinking": "", "signature": ""});
                    self.open_block(Open::Thinking, b);
                }
                let d = json!({"type": "thinking_delta", "thinking": t});
                self.append("thinking", &t, d);
            }
            Piece::Content(t) => {
                if t.is_empty() {
                    return;
                }
                if self.open != Some(Open::Text) {
                    let b = json!({"type": "text", "text": ""});
                    self.open_block(Open::Text, b);
                }
                let d = json!({"type": "text_delta", "text": t});
                self.append("text", &t, d);
            }
            Piece::CallStart { name, .. } => {
                let b =
                    json!({"type": "tool_use", "id": call_id("toolu_"), "name": name, "input": {}});
                self.open_block(Open::ToolUse, b);
            }
            Piece::CallArgs { fragment, .. } => {
                if self.open != Some(Open::ToolUse) {
                    return;
                }
                self.args.push_str(&fragment);
                let index = self.blocks.len() - 1;
                self.emit(
                    "content_block_delta",
                    json!({"index": index, "delta": {"type": "input_json_delta", "partial_json": fragment}}),
                );
            }
        }
    }

    fn close(&mut self) {
        let Some(kind) = self.open.take() else {
            return;
        };
        let index = self.blocks.len() - 1;
        if kind == Open::ToolUse {
            // Anthropic's input is an object; arguments that are not one
            // (only possible without a forced call) become an empty input.
            let args = std::mem::take(&mut self.args);
            let input = serde_json::from_str::<Value>(&args)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({}));
            self.blocks[index]["input"] = input;
        }
        self.emit("content_block_stop", json!({"index": index}));
    }

    fn finish(&mut self, reason: Finish, stop_sequence: Option<usize>) {
        self.close();
        self.stop_reason = match reason {
            Finish::ToolCalls => "tool_use",
            Finish::Length => "max_tokens",
            Finish::Stop => match stop_sequence.and_then(|i| self.stops.get(i)) {
                Some(s) => {
                    self.stop_sequence = Some(s.clone());
                    "stop_sequence"
                }
                None => "end_turn",
            },
        };
    }

    fn usage(u: &Usage) -> Value {
        let mut v = json!({
            "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": u.cached_tokens,
            "output_tokens": u.completion_tokens,
        });
        crate::generation::add_draft(&mut v, u);
        v
    }

    fn message(&self, usage: Option<&Usage>) -> Value {
        let done = usage.is_some();
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": if done { Value::from(self.blocks.clone()) } else { json!([]) },
            "stop_reason": if done { Value::from(self.stop_reason) } else { Value::Null },
            "stop_sequence": if done { Value::from(self.stop_sequence.clone()) } else { Value::Null },
            "usage": usage.map_or_else(
                || json!({"input_tokens": 0, "output_tokens": 0}),
                Self::usage,
            ),
        })
    }

    fn event(&mut self, e: TurnEvent) -> Option<Usage> {
        match e {
            TurnEvent::Pieces { pieces, .. } => pieces.into_iter().for_each(|p| self.piece(p)),
            TurnEvent::Finish {
                reason,
                stop_sequence,
                ..
            } => self.finish(reason, stop_sequence),
            TurnEvent::Done(u) => return Some(u),
        }
        None
    }
}

/// Runs the turn to its end: the message.
pub async fn collect(mut out: Output, mut turn: Turn) -> ApiResult<Value> {
    while let Some(e) = turn.next().await? {
        if let Some(u) = out.event(e) {
            return Ok(out.message(Some(&u)));
        }
    }
    Err(shutting_down())
}

struct Streaming {
    out: Output,
    turn: Turn,
    done: bool,
}

/// Streams the turn as Anthropic's events; the turn (with the engine's
/// receiver) lives in the body stream, so a client that goes away cancels.
pub fn stream(
    mut out: Output,
    turn: Turn,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    out.stream = true;
    let m = out.message(None);
    out.emit("message_start", json!({"message": m}));
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
                        let delta = json!({
                            "delta": {"stop_reason": s.out.stop_reason, "stop_sequence": s.out.stop_sequence},
                            "usage": Output::usage(&u),
                        });
                        s.out.emit("message_delta", delta);
                        s.out.emit("message_stop", json!({}));
                        s.done = true;
                    }
                }
                Ok(None) => s.done = true,
                Err(e) => {
                    s.out.emit("error", super::error_body(&e));
                    s.done = true;
                }
            }
        }
    });
    Sse::new(s)
}

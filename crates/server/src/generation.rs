//! Turning a plain generation's engine events into `/v1/completions`
//! responses: collected into one JSON body, or streamed as server-sent
//! events (`data: {chunk}` lines, then `data: [DONE]`). Also the pieces
//! every endpoint shares: [`Meta`], usage and log-probability JSON.
//! (Chat-shaped endpoints parse their output first: `turn.rs`.)

use crate::error::{ApiError, ApiResult};
use axum::response::sse::{Event as SseEvent, Sse};
use futures_util::Stream;
use serde_json::{json, Value};
use shohin_engine::generate::{FinishReason, Next, TokenLogprob};
use shohin_engine::scheduler::{Event, Usage};
use shohin_tokenizer::Tokenizer;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// What every response of one request repeats.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub n: usize,
    pub logprobs: bool,
    pub include_usage: bool,
}

impl Meta {
    /// `prefix`: the id's (`chatcmpl-`, `cmpl-`).
    pub fn new(prefix: &str, model: String, n: usize, logprobs: bool, include_usage: bool) -> Self {
        Self {
            id: format!("{prefix}{:024x}", rand::random::<u128>() >> 32),
            created: crate::state::unix_now(),
            model,
            n,
            logprobs,
            include_usage,
        }
    }
}

/// One finished choice.
#[derive(Debug, Default)]
pub struct Choice {
    pub text: String,
    pub finish: Option<FinishReason>,
    pub logprobs: Vec<TokenLogprob>,
}

/// Reads events until `Done`: the choices and the usage.
pub async fn collect(
    rx: &mut UnboundedReceiver<Event>,
    n: usize,
) -> ApiResult<(Vec<Choice>, Usage)> {
    let mut choices: Vec<Choice> = (0..n).map(|_| Choice::default()).collect();
    loop {
        match rx.recv().await {
            Some(Event::Token { index, next }) => {
                let Some(c) = choices.get_mut(index) else {
                    return Err(ApiError::internal(format!(
                        "the engine sent choice {index} of {n}"
                    )));
                };
                c.text.push_str(&next.text);
                c.logprobs.extend(next.logprob);
                if next.finish.is_some() {
                    c.finish = next.finish;
                }
            }
            Some(Event::Done(u)) => {
                if choices
                    .iter()
                    .any(|c| c.finish == Some(FinishReason::Cancelled))
                {
                    return Err(shutting_down());
                }
                return Ok((choices, u));
            }
            Some(Event::Error(e)) => return Err(ApiError::internal(e)),
            Some(Event::Embedding(_)) => {}
            None => return Err(shutting_down()),
        }
    }
}

pub fn shutting_down() -> ApiError {
    ApiError::unavailable(
        "the request was cancelled: the server is shutting down",
        "shutting_down",
    )
}

/// An `f32` as JSON with its shortest decimal form (`-0.25`, not the
/// digits of its `f64` widening); non-finite values become `null`.
pub fn f32_json(x: f32) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    x.to_string()
        .parse::<f64>()
        .map_or(Value::Null, Value::from)
}

/// OpenAI's usage object; with speculative decoding on (`serve
/// --lookup`, `serve -md`) also `draft: {drafted, accepted}` (the counts of `run
/// --json`'s `draft`; llama-server's `timings.draft_n` and
/// `timings.draft_n_accepted`).
pub fn usage_json(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    });
    add_draft(&mut v, u);
    v
}

/// Adds `draft: {drafted, accepted}` to a usage object when the engine
/// speculated (chat and completions, Responses and Anthropic Messages alike:
/// the official clients keep unknown usage fields).
pub fn add_draft(v: &mut Value, u: &Usage) {
    if let Some(d) = u.draft {
        v["draft"] = json!({"drafted": d.drafted, "accepted": d.accepted});
    }
}

fn finish_str(f: Option<FinishReason>) -> Value {
    match f {
        None => Value::Null,
        Some(f) => Value::from(f.as_str()),
    }
}

/// The token's text as OpenAI shows it (lossy UTF-8 of its bytes) and its bytes.
fn token_text(tok: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let b = tok.token_bytes(id).unwrap_or(&[]);
    (String::from_utf8_lossy(b).into_owned(), b.to_vec())
}

/// Chat's `logprobs.content` entry.
pub fn chat_logprob(tok: &Tokenizer, lp: &TokenLogprob) -> Value {
    let (t, b) = token_text(tok, lp.id);
    let top: Vec<Value> = lp
        .top
        .iter()
        .map(|&(id, l)| {
            let (t, b) = token_text(tok, id);
            json!({"token": t, "logprob": f32_json(l), "bytes": b})
        })
        .collect();
    json!({"token": t, "logprob": f32_json(lp.logprob), "bytes": b, "top_logprobs": top})
}

/// The legacy completions `logprobs` object; `offset` is the text offset
/// of the first token (updated).
fn text_logprobs(tok: &Tokenizer, lps: &[TokenLogprob], offset: &mut usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    for lp in lps {
        let (t, _) = token_text(tok, lp.id);
        text_offset.push(*offset);
        *offset += t.len();
        tokens.push(t);
        token_logprobs.push(f32_json(lp.logprob));
        let top: serde_json::Map<String, Value> = lp
            .top
            .iter()
            .map(|&(id, l)| (token_text(tok, id).0, f32_json(l)))
            .collect();
        top_logprobs.push(Value::Object(top));
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

/// The whole (non-streamed) `text_completion`.
pub fn response(meta: &Meta, tok: &Tokenizer, choices: &[Choice], usage: &Usage) -> Value {
    let choices: Vec<Value> = choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let logprobs = if meta.logprobs {
                text_logprobs(tok, &c.logprobs, &mut 0)
            } else {
                Value::Null
            };
            json!({
                "index": i,
                "text": c.text,
                "logprobs": logprobs,
                "finish_reason": finish_str(c.finish),
            })
        })
        .collect();
    json!({
        "id": meta.id,
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": usage_json(usage),
    })
}

/// Streams a generation: the receiver lives in the body stream, so a
/// client that goes away drops it and the engine cancels the request.
pub fn stream(
    meta: Meta,
    tok: Arc<Tokenizer>,
    rx: UnboundedReceiver<Event>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let st = StreamState {
        offsets: vec![0; meta.n],
        meta,
        tok,
        rx,
        pending: VecDeque::new(),
        done: false,
    };
    let s = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(data) = st.pending.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), st));
            }
            if st.done {
                return None;
            }
            match st.rx.recv().await {
                Some(Event::Token { index, next }) => st.token(index, &next),
                Some(Event::Done(u)) => {
                    if st.meta.include_usage {
                        let mut c = st.envelope(Vec::new());
                        c["usage"] = usage_json(&u);
                        st.pending.push_back(c.to_string());
                    }
                    st.finish();
                }
                Some(Event::Error(e)) => {
                    st.pending
                        .push_back(ApiError::internal(e).body().to_string());
                    st.finish();
                }
                Some(Event::Embedding(_)) => {}
                None => {
                    st.pending.push_back(shutting_down().body().to_string());
                    st.finish();
                }
            }
        }
    });
    Sse::new(s)
}

struct StreamState {
    meta: Meta,
    tok: Arc<Tokenizer>,
    rx: UnboundedReceiver<Event>,
    /// `data:` payloads ready to send.
    pending: VecDeque<String>,
    /// Text offset of each choice (legacy logprobs).
    offsets: Vec<usize>,
    done: bool,
}

impl StreamState {
    fn envelope(&self, choices: Vec<Value>) -> Value {
        let mut v = json!({
            "id": self.meta.id,
            "object": "text_completion",
            "created": self.meta.created,
            "model": self.meta.model,
            "choices": choices,
        });
        if self.meta.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }

    /// One choice's chunk.
    fn chunk(
        &self,
        index: usize,
        text: &str,
        logprobs: Value,
        finish: Option<FinishReason>,
    ) -> String {
        let choice = json!({
            "index": index,
            "text": text,
            "logprobs": logprobs,
            "finish_reason": finish_str(finish),
        });
        self.envelope(vec![choice]).to_string()
    }

    fn token(&mut self, index: usize, next: &Next) {
        if index >= self.meta.n {
            return;
        }
        let lp = match &next.logprob {
            Some(lp) if self.meta.logprobs => text_logprobs(
                &self.tok,
                std::slice::from_ref(lp),
                &mut self.offsets[index],
            ),
            _ => Value::Null,
        };
        if !next.text.is_empty() || !lp.is_null() {
            let c = self.chunk(index, &next.text, lp, None);
            self.pending.push_back(c);
        }
        match next.finish {
            None => {}
            Some(FinishReason::Cancelled) => {
                self.pending.push_back(shutting_down().body().to_string());
            }
            Some(f) => {
                let c = self.chunk(index, "", Value::Null, Some(f));
                self.pending.push_back(c);
            }
        }
    }

    fn finish(&mut self) {
        self.pending.push_back("[DONE]".to_string());
        self.done = true;
    }
}

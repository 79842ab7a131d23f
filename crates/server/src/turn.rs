//! One assistant turn of a chat-shaped request (chat completions, Responses,
//! Anthropic Messages share it): the engine's token events, each choice's
//! text run through `shohin_chat::OutputParser`, become [`Piece`]s —
//! reasoning, content, tool-call starts with their ids, argument text —
//! and a finish reason that is `tool_calls` when the model called a tool.

use crate::error::{ApiError, ApiResult};
pub use crate::generation::shutting_down;
use shohin_chat::{Delta, OutputParser, ParserOptions};
use shohin_engine::generate::{FinishReason, TokenLogprob};
use shohin_engine::scheduler::{Event, Usage};
use tokio::sync::mpsc::UnboundedReceiver;

/// A parsed piece of one choice's output.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Reasoning(String),
    Content(String),
    /// Call number `call` of this choice begins.
    CallStart {
        call: usize,
        id: String,
        name: String,
    },
    /// More of call `call`'s arguments (JSON text).
    CallArgs {
        call: usize,
        fragment: String,
    },
}

/// Why a choice ended, as the APIs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
}

impl Finish {
    pub fn openai(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
        }
    }
}

pub enum TurnEvent {
    /// What one token of choice `index` added (possibly nothing), with its
    /// log-probability when asked for.
    Pieces {
        index: usize,
        pieces: Vec<Piece>,
        logprob: Option<TokenLogprob>,
    },
    Finish {
        index: usize,
        reason: Finish,
        /// The index of the request's stop string that ended the choice.
        stop_sequence: Option<usize>,
    },
    Done(Usage),
}

pub struct Turn {
    rx: UnboundedReceiver<Event>,
    parsers: Vec<OutputParser>,
    queue: std::collections::VecDeque<TurnEvent>,
    done: bool,
}

/// A tool call id as OpenAI writes them (`call_` + 24 alphanumerics).
pub fn call_id(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

impl Turn {
    pub fn new(rx: UnboundedReceiver<Event>, n: usize, opts: ParserOptions) -> Self {
        Self {
            rx,
            parsers: (0..n).map(|_| OutputParser::new(opts)).collect(),
            queue: Default::default(),
            done: false,
        }
    }

    fn pieces(deltas: Vec<Delta>) -> Vec<Piece> {
        deltas
            .into_iter()
            .map(|d| match d {
                Delta::Reasoning(t) => Piece::Reasoning(t),
                Delta::Content(t) => Piece::Content(t),
                Delta::ToolCallStart { index, name } => Piece::CallStart {
                    call: index,
                    id: call_id("call_"),
                    name,
                },
                Delta::ToolCallArguments { index, fragment } => Piece::CallArgs {
                    call: index,
                    fragment,
                },
            })
            .collect()
    }

    /// The next event; `None` after [`TurnEvent::Done`].
    pub async fn next(&mut self) -> ApiResult<Option<TurnEvent>> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            if self.done {
                return Ok(None);
            }
            match self.rx.recv().await {
                Some(Event::Token { index, next }) => {
                    let Some(p) = self.parsers.get_mut(index) else {
                        return Err(ApiError::internal(format!(
                            "the engine sent choice {index} of {}",
                            self.parsers.len()
                        )));
                    };
                    let mut deltas = p.push(&next.text);
                    if next.finish.is_some() {
                        deltas.extend(p.finish());
                    }
                    let calls = p.tool_calls();
                    self.queue.push_back(TurnEvent::Pieces {
                        index,
                        pieces: Self::pieces(deltas),
                        logprob: next.logprob,
                    });
                    let reason = match next.finish {
                        None => None,
                        Some(FinishReason::Cancelled) => return Err(shutting_down()),
                        // A turn cut by max_tokens stays `length`, calls or not.
                        Some(FinishReason::Length) => Some(Finish::Length),
                        Some(FinishReason::Stop) if calls > 0 => Some(Finish::ToolCalls),
                        Some(FinishReason::Stop) => Some(Finish::Stop),
                    };
                    if let Some(reason) = reason {
                        self.queue.push_back(TurnEvent::Finish {
                            index,
                            reason,
                            stop_sequence: next.stop_sequence,
                        });
                    }
                }
                Some(Event::Done(u)) => {
                    self.done = true;
                    self.queue.push_back(TurnEvent::Done(u));
                }
                Some(Event::Error(e)) => return Err(ApiError::internal(e)),
                Some(Event::Embedding(_)) => {}
                None => return Err(shutting_down()),
            }
        }
    }
}

/// A finished tool call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A whole choice.
#[derive(Clone, Debug)]
pub struct ChoiceOut {
    pub reasoning: Option<String>,
    pub content: String,
    pub calls: Vec<Call>,
    pub finish: Finish,
    pub logprobs: Vec<TokenLogprob>,
}

impl Default for ChoiceOut {
    fn default() -> Self {
        Self {
            reasoning: None,
            content: String::new(),
            calls: Vec::new(),
            finish: Finish::Stop,
            logprobs: Vec::new(),
        }
    }
}

impl ChoiceOut {
    pub fn apply(&mut self, p: Piece) {
        match p {
            Piece::Reasoning(t) => self.reasoning.get_or_insert_with(String::new).push_str(&t),
            Piece::Content(t) => self.content.push_str(&t),
            Piece::CallStart { call, id, name } => {
                if self.calls.len() <= call {
                    self.calls.resize_with(call + 1, Call::default);
                }
                self.calls[call].id = id;
                self.calls[call].name = name;
            }
            Piece::CallArgs { call, fragment } => {
                if self.calls.len() <= call {
                    self.calls.resize_with(call + 1, Call::default);
                }
                self.calls[call].arguments.push_str(&fragment);
            }
        }
    }
}

/// Runs a turn to its end: every choice whole, and the usage.
pub async fn collect(mut turn: Turn, n: usize) -> ApiResult<(Vec<ChoiceOut>, Usage)> {
    let mut out: Vec<ChoiceOut> = (0..n).map(|_| ChoiceOut::default()).collect();
    while let Some(e) = turn.next().await? {
        match e {
            TurnEvent::Pieces {
                index,
                pieces,
                logprob,
            } => {
                let c = &mut out[index];
                c.logprobs.extend(logprob);
                for p in pieces {
                    c.apply(p);
                }
            }
            TurnEvent::Finish { index, reason, .. } => out[index].finish = reason,
            TurnEvent::Done(u) => return Ok((out, u)),
        }
    }
    Err(shutting_down())
}

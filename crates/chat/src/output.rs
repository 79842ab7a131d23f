//! Parsing what the model generates into reasoning, content and tool calls.
//!
//! [`OutputParser`] is fed the generated text piece by piece (a piece may end
//! anywhere, even inside a tag; pieces are `&str`, so a multi-byte character
//! is never split) and returns [`Delta`]s as soon as they are certain: only text that may be the start of a tag, whitespace that may turn
//! out to be trailing, and an unfinished tool call are held back.
//! [`parse_output`] does the same on a whole text.
//!
//! # Recognized formats
//!
//! * **Reasoning**, Qwen3 / DeepSeek-R1 style: `<think>…</think>` at the very
//!   start of the output, after optional whitespace (a `<think>` later in the
//!   text is ordinary content). With [`ParserOptions::starts_in_reasoning`] the
//!   output is taken to begin inside the block, for prompts that end with
//!   `<think>\n` (llama.cpp's `thinking_forced_open`). Without a closing
//!   `</think>` by the end, everything after `<think>` is reasoning, as
//!   llama.cpp does (`common_chat_msg_parser::try_parse_reasoning` in
//!   `common/chat-parser.cpp`, "Allow unclosed thinking tags", llama.cpp
//!   issues #13812 and #13877). As there, the reasoning text is stripped of
//!   leading and trailing whitespace, and whitespace after `</think>` is
//!   skipped. One deviation: llama.cpp keeps whitespace *before* `<think>` as
//!   content; here it is dropped.
//! * **Tool calls**, Qwen2.5 / Qwen3 / Hermes 2 Pro style, recognized only
//!   when [`ParserOptions::tools`] is set (the request had tools):
//!
//!   ```text
//!   <tool_call>
//!   {"name": "get_weather", "arguments": {"city": "Paris"}}
//!   </tool_call>
//!   ```
//!
//!   anywhere in the content; several blocks in a row are parallel calls. The
//!   block is removed from the content, text before the first call stays
//!   content, whitespace after each `</tool_call>` is skipped (llama.cpp's
//!   `common_chat_parse_hermes_2_pro`, which `consume_spaces()` after the
//!   closing tag). This is the format Qwen's templates ask for (the system
//!   prompt rendered from `tools`, see `tests/data/qwen3.jinja`) and Qwen's
//!   function-calling docs (qwen.readthedocs.io, "Function Calling", Hermes
//!   style). llama.cpp's Hermes parser also accepts `<function=…>` and bare
//!   `{"name": …}` forms; they are not recognized here.
//!
//! A call whose JSON does not parse (or is not an object with a string
//! `name`) is not a call: the whole block, tags included, stays content. This
//! is per block; llama.cpp instead re-parses the whole message as plain
//! content when any call fails. A block still open at the end of the output
//! is a call if what it holds parses, else content.
//!
//! # Arguments
//!
//! A call is emitted when its `</tool_call>` arrives (or at the end), as one
//! [`Delta::ToolCallStart`] and one [`Delta::ToolCallArguments`]: only then is
//! it known that the block is a well-formed call rather than content, and a
//! streamed start cannot be taken back. The fragments of a call concatenate to
//! the JSON text of its `arguments` value **exactly as the model wrote it**
//! (not re-serialized); a missing or `null` `arguments` is `{}`.
//!
//! Ids (`call_…`) are for the caller to assign.

use serde::Deserialize;
use serde_json::value::RawValue;

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const CALL_OPEN: &str = "<tool_call>";
const CALL_CLOSE: &str = "</tool_call>";

/// What to look for in the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserOptions {
    /// The output begins inside a reasoning block (the rendered prompt ended
    /// with `<think>\n`). Only meaningful with `reasoning`.
    pub starts_in_reasoning: bool,
    /// Separate `<think>…</think>` reasoning; when false it is content.
    pub reasoning: bool,
    /// Recognize `<tool_call>` blocks (set when the request had tools).
    pub tools: bool,
}

/// A piece of parsed output, in generation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Reasoning text (OpenAI-compatible servers' `reasoning_content`).
    Reasoning(String),
    /// Answer text.
    Content(String),
    /// A tool call begins; `index` counts calls from 0 in this output.
    ToolCallStart {
        /// Position of the call in this output.
        index: usize,
        /// Function name.
        name: String,
    },
    /// Part of the JSON text of call `index`'s arguments.
    ToolCallArguments {
        /// Position of the call in this output.
        index: usize,
        /// Next piece of the arguments' JSON text.
        fragment: String,
    },
}

/// A complete tool call, as [`parse_output`] returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedToolCall {
    /// Function name.
    pub name: String,
    /// JSON text of the arguments (as the model wrote it).
    pub arguments: String,
}

/// A whole output, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOutput {
    /// Reasoning text; `None` when there was none (or it was only whitespace).
    pub reasoning: Option<String>,
    /// Answer text, without reasoning or tool-call markup.
    pub content: String,
    /// Tool calls, in order.
    pub tool_calls: Vec<ParsedToolCall>,
}

impl ParserOptions {
    /// Whether a rendered prompt leaves the model inside a reasoning block:
    /// it ends with `<think>\n` (llama.cpp's test for
    /// `thinking_forced_open`). Use it for [`ParserOptions::starts_in_reasoning`].
    pub fn prompt_opens_reasoning(prompt: &str) -> bool {
        prompt.ends_with("<think>\n")
    }
}

impl ParsedOutput {
    /// Accumulates one delta (what a non-streaming response is built from).
    pub fn apply(&mut self, delta: Delta) {
        match delta {
            Delta::Reasoning(text) => self
                .reasoning
                .get_or_insert_with(String::new)
                .push_str(&text),
            Delta::Content(text) => self.content.push_str(&text),
            Delta::ToolCallStart { index, name } => {
                if self.tool_calls.len() <= index {
                    self.tool_calls
                        .resize_with(index + 1, ParsedToolCall::default);
                }
                self.tool_calls[index].name = name;
            }
            Delta::ToolCallArguments { index, fragment } => {
                if self.tool_calls.len() <= index {
                    self.tool_calls
                        .resize_with(index + 1, ParsedToolCall::default);
                }
                self.tool_calls[index].arguments.push_str(&fragment);
            }
        }
    }
}

/// Parses a whole output at once (same rules as the streaming parser).
pub fn parse_output(text: &str, opts: ParserOptions) -> ParsedOutput {
    let mut parser = OutputParser::new(opts);
    let mut out = ParsedOutput::default();
    for d in parser.push(text).into_iter().chain(parser.finish()) {
        out.apply(d);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before anything but whitespace: may still open `<think>`.
    Start,
    /// Inside `<think>…`.
    Reasoning,
    /// Ordinary text.
    Content,
    /// After `<tool_call>`, waiting for `</tool_call>`.
    Call,
}

/// Streaming output parser; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct OutputParser {
    opts: ParserOptions,
    state: State,
    /// Text received and not yet turned into deltas.
    buf: String,
    /// Some non-whitespace reasoning was emitted (leading whitespace is dropped
    /// until then).
    reasoning_started: bool,
    /// Whitespace at the current end of the reasoning, held back until
    /// non-whitespace reasoning follows (dropped if `</think>` or the end
    /// comes first).
    reasoning_ws: String,
    /// Drop whitespace at the start of the content that follows
    /// (after `</think>` and after a tool call).
    skip_ws: bool,
    /// Tool calls emitted so far.
    n_calls: usize,
}

impl OutputParser {
    /// A parser for one output.
    pub fn new(opts: ParserOptions) -> Self {
        let state = match (opts.reasoning, opts.starts_in_reasoning) {
            (false, _) => State::Content,
            (true, false) => State::Start,
            (true, true) => State::Reasoning,
        };
        Self {
            opts,
            state,
            buf: String::new(),
            reasoning_started: false,
            reasoning_ws: String::new(),
            skip_ws: false,
            n_calls: 0,
        }
    }

    /// Feeds the next piece of generated text; returns what became certain.
    pub fn push(&mut self, piece: &str) -> Vec<Delta> {
        self.buf.push_str(piece);
        let mut out = Vec::new();
        while self.step(&mut out, false) {}
        out
    }

    /// Ends the output: held-back text is resolved (a partial tag is text,
    /// an open `<think>` block is reasoning, an open call is a call if it
    /// parses). The parser is empty afterwards.
    pub fn finish(&mut self) -> Vec<Delta> {
        let mut out = Vec::new();
        while self.step(&mut out, true) {}
        // Trailing whitespace of the reasoning is dropped.
        self.reasoning_ws.clear();
        out
    }

    /// Number of tool calls emitted so far.
    pub fn tool_calls(&self) -> usize {
        self.n_calls
    }

    /// One transition; false when nothing more can be decided.
    fn step(&mut self, out: &mut Vec<Delta>, eof: bool) -> bool {
        match self.state {
            State::Start => {
                let rest = self.buf.trim_start();
                if rest.starts_with(THINK_OPEN) {
                    let skip = self.buf.len() - rest.len() + THINK_OPEN.len();
                    self.buf.drain(..skip);
                    self.state = State::Reasoning;
                    true
                } else if THINK_OPEN.starts_with(rest) && !eof {
                    // Only whitespace, or a prefix of `<think>`, so far.
                    false
                } else {
                    self.state = State::Content;
                    true
                }
            }
            State::Reasoning => {
                if let Some(at) = self.buf.find(THINK_CLOSE) {
                    let text: String = self.buf.drain(..at + THINK_CLOSE.len()).collect();
                    self.emit_reasoning(&text[..at], out);
                    self.reasoning_ws.clear();
                    self.state = State::Content;
                    self.skip_ws = true;
                    return true;
                }
                let keep = if eof {
                    0
                } else {
                    partial_tag_len(&self.buf, THINK_CLOSE)
                };
                let text: String = self.buf.drain(..self.buf.len() - keep).collect();
                self.emit_reasoning(&text, out);
                false
            }
            State::Content => {
                if self.skip_ws {
                    let ws = self.buf.len() - self.buf.trim_start().len();
                    self.buf.drain(..ws);
                    if self.buf.is_empty() {
                        return false;
                    }
                    self.skip_ws = false;
                }
                if !self.opts.tools {
                    emit_content(std::mem::take(&mut self.buf), out);
                    return false;
                }
                if let Some(at) = self.buf.find(CALL_OPEN) {
                    let text: String = self.buf.drain(..at + CALL_OPEN.len()).collect();
                    emit_content(text[..at].to_string(), out);
                    self.state = State::Call;
                    return true;
                }
                let keep = if eof {
                    0
                } else {
                    partial_tag_len(&self.buf, CALL_OPEN)
                };
                let text: String = self.buf.drain(..self.buf.len() - keep).collect();
                emit_content(text, out);
                false
            }
            State::Call => {
                if let Some(at) = self.buf.find(CALL_CLOSE) {
                    let block: String = self.buf.drain(..at + CALL_CLOSE.len()).collect();
                    self.end_call(&block[..at], true, out);
                    true
                } else if eof {
                    let block = std::mem::take(&mut self.buf);
                    self.end_call(&block, false, out);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Emits reasoning text, trimming leading whitespace of the whole
    /// reasoning and holding back whitespace that may be trailing.
    fn emit_reasoning(&mut self, text: &str, out: &mut Vec<Delta>) {
        let text = if self.reasoning_started {
            text
        } else {
            text.trim_start()
        };
        let body = text.trim_end();
        if body.is_empty() {
            self.reasoning_ws.push_str(text);
            return;
        }
        let mut delta = std::mem::take(&mut self.reasoning_ws);
        delta.push_str(body);
        out.push(Delta::Reasoning(delta));
        self.reasoning_started = true;
        self.reasoning_ws.push_str(&text[body.len()..]);
    }

    /// Handles the text between `<tool_call>` and `</tool_call>` (or the end
    /// of the output when `closed` is false).
    fn end_call(&mut self, inner: &str, closed: bool, out: &mut Vec<Delta>) {
        self.state = State::Content;
        match parse_call(inner) {
            Some((name, arguments)) => {
                let index = self.n_calls;
                self.n_calls += 1;
                out.push(Delta::ToolCallStart { index, name });
                out.push(Delta::ToolCallArguments {
                    index,
                    fragment: arguments,
                });
                self.skip_ws = true;
            }
            None => {
                // Not a well-formed call: the block stays content, verbatim.
                let mut text = String::with_capacity(inner.len() + 32);
                text.push_str(CALL_OPEN);
                text.push_str(inner);
                if closed {
                    text.push_str(CALL_CLOSE);
                }
                emit_content(text, out);
            }
        }
    }
}

fn emit_content(text: String, out: &mut Vec<Delta>) {
    if !text.is_empty() {
        out.push(Delta::Content(text));
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`
/// (text that may become `tag` with more input). Tags start with ASCII `<`,
/// so the suffix starts on a character boundary.
fn partial_tag_len(text: &str, tag: &str) -> usize {
    let max = text.len().min(tag.len() - 1);
    (1..=max)
        .rev()
        .find(|&n| text.as_bytes().ends_with(&tag.as_bytes()[..n]))
        .unwrap_or(0)
}

/// `{"name": "...", "arguments": ...}`; other keys are ignored.
#[derive(Deserialize)]
struct CallJson<'a> {
    name: String,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// The name and the arguments' JSON text of a call block, or `None` when
/// the block is not one JSON object with a string `name`.
fn parse_call(inner: &str) -> Option<(String, String)> {
    let inner = inner.trim();
    // serde would also accept the struct as an array (`["f", {}]`).
    if !inner.starts_with('{') {
        return None;
    }
    let call: CallJson<'_> = serde_json::from_str(inner).ok()?;
    let arguments = match call.arguments {
        Some(raw) => raw.get().to_string(),
        None => "{}".to_string(),
    };
    Some((call.name, arguments))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_tag_len_finds_prefixes() {
        assert_eq!(partial_tag_len("abc<tool_", CALL_OPEN), 6);
        assert_eq!(partial_tag_len("abc<", CALL_OPEN), 1);
        assert_eq!(partial_tag_len("abc", CALL_OPEN), 0);
        assert_eq!(partial_tag_len("<tool_call", CALL_OPEN), 10);
        assert_eq!(partial_tag_len("é<", THINK_CLOSE), 1);
        assert_eq!(partial_tag_len("</think", THINK_CLOSE), 7);
    }

    #[test]
    fn prompt_opens_reasoning() {
        assert!(ParserOptions::prompt_opens_reasoning(
            "<|im_start|>assistant\n<think>\n"
        ));
        // Qwen3 with enable_thinking=false closes the block itself.
        assert!(!ParserOptions::prompt_opens_reasoning(
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ));
        assert!(!ParserOptions::prompt_opens_reasoning(
            "<|im_start|>assistant\n"
        ));
    }

    #[test]
    fn call_json() {
        assert_eq!(
            parse_call("\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2]}}\n"),
            Some(("f".into(), "{\"a\": [1, 2]}".into()))
        );
        assert_eq!(
            parse_call("{\"name\": \"f\"}"),
            Some(("f".into(), "{}".into()))
        );
        assert_eq!(
            parse_call("{\"name\": \"f\", \"arguments\": null}"),
            Some(("f".into(), "{}".into()))
        );
        assert_eq!(parse_call("{\"name\": 1}"), None);
        assert_eq!(parse_call("{\"name\": \"f\"} x"), None);
        assert_eq!(parse_call("[\"f\"]"), None);
        assert_eq!(parse_call(""), None);
    }
}

//! Chat templates: the Jinja text stored in a GGUF file's `tokenizer.chat_template`
//! key, rendered the way Hugging Face `transformers` renders it
//! (`PreTrainedTokenizerBase.apply_chat_template`).
//!
//! The template engine is minijinja, configured to behave like the jinja2
//! environment built by transformers' `_compile_jinja_template`
//! (`transformers/utils/chat_template_utils.py`):
//!
//! * `trim_blocks=True`, `lstrip_blocks=True`, jinja2's default
//!   `keep_trailing_newline=False`, no auto-escaping;
//! * the `jinja2.ext.loopcontrols` extension (`{% break %}`, `{% continue %}`);
//! * globals `raise_exception(msg)` and `strftime_now(fmt)`, and a `tojson`
//!   filter with `json.dumps` semantics (see [`tojson`](crate::tojson));
//! * Python string/dict/list methods (`str.startswith`, `dict.items`, …) via
//!   `minijinja-contrib`'s pycompat callback;
//! * `{% generation %}` blocks (transformers' `AssistantTracker` extension)
//!   render their body unchanged.
//!
//! The render context mirrors `render_jinja_template`: `messages`, `tools`
//! (the OpenAI `tools` array, or `None`), `documents` (`None`),
//! `add_generation_prompt`, `bos_token`, `eos_token`, and `enable_thinking`
//! only when the caller sets it (Qwen3-style templates test
//! `enable_thinking is defined`).
//!
//! Tool calls in assistant messages are passed to templates with
//! `function.arguments` parsed into a JSON value when the OpenAI string parses
//! as JSON (templates write `arguments | tojson` or test `arguments is string`),
//! as llama.cpp does for templates that need object arguments and as
//! transformers' documentation shows tool calls. [`output`] parses what the
//! model generates back into reasoning, content and tool calls.

mod env;
mod error;
pub mod output;
mod pyrepr;
mod strftime;
mod tojson;

pub use error::ChatError;
pub use output::{parse_output, Delta, OutputParser, ParsedOutput, ParsedToolCall, ParserOptions};

use std::panic::AssertUnwindSafe;

use minijinja::{context, Environment, Value};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Name under which the single template is registered in its environment.
const TEMPLATE_NAME: &str = "chat_template";

/// ChatML (`<|im_start|>role\ncontent<|im_end|>\n` per turn), the format
/// llama.cpp falls back to (`LLM_CHAT_TEMPLATE_CHATML` in
/// `src/llama-chat.cpp`). Used only when a model file has no template.
const CHATML_SOURCE: &str = "{%- for message in messages %}\n\
    {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n\
    {%- endfor %}\n\
    {%- if add_generation_prompt %}\n\
    {{- '<|im_start|>assistant\\n' }}\n\
    {%- endif %}\n";

/// One conversation turn, as the `{"role": ..., "content": ...}` dict that
/// Hugging Face templates expect. Optional fields are left out of the dict
/// when `None`, so templates' `is defined` tests see them as undefined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, … (templates decide what is valid).
    pub role: String,
    /// The text of the turn (an OpenAI `null` content is the empty string).
    pub content: String,
    /// Reasoning of an earlier assistant turn (Qwen3 templates render it in
    /// a `<think>` block when it belongs to the current tool-use round).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool calls made by an assistant turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// For a `tool` turn: the id of the call it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a `tool` turn: the function name (OpenAI's legacy `name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    /// Convenience constructor.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            ..Self::default()
        }
    }

    /// Sets `tool_calls`.
    #[must_use]
    pub fn with_tool_calls(mut self, calls: Vec<ToolCall>) -> Self {
        self.tool_calls = Some(calls);
        self
    }

    /// Sets `tool_call_id`.
    #[must_use]
    pub fn with_tool_call_id(mut self, id: impl Into<String>) -> Self {
        self.tool_call_id = Some(id.into());
        self
    }

    /// Sets `name`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets `reasoning_content`.
    #[must_use]
    pub fn with_reasoning_content(mut self, reasoning: impl Into<String>) -> Self {
        self.reasoning_content = Some(reasoning.into());
        self
    }
}

/// An OpenAI tool call: `{"id", "type": "function", "function": {"name", "arguments"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// Call id (`call_…`), echoed by the `tool` turn's `tool_call_id`.
    pub id: String,
    /// Always `function` in the OpenAI API.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function called.
    pub function: FunctionCall,
}

impl ToolCall {
    /// A `type: "function"` call.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: "function".into(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as the OpenAI API carries them: JSON text.
    pub arguments: String,
}

/// Templates see `arguments` as the parsed JSON value when the text parses
/// (so `arguments | tojson` prints the object once, not a quoted string, and
/// `arguments is string` is false), and as the raw string otherwise.
impl Serialize for FunctionCall {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("name", &self.name)?;
        match serde_json::from_str::<serde_json::Value>(&self.arguments) {
            Ok(parsed) => map.serialize_entry("arguments", &parsed)?,
            Err(_) => map.serialize_entry("arguments", &self.arguments)?,
        }
        map.end()
    }
}

/// Variables besides `messages` that `apply_chat_template` passes to templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Append the header that opens the assistant's turn.
    pub add_generation_prompt: bool,
    /// `enable_thinking` template variable; `None` leaves it undefined, as
    /// transformers does when the caller does not pass it.
    pub enable_thinking: Option<bool>,
    /// Text of the BOS token (`bos_token` variable).
    pub bos_token: String,
    /// Text of the EOS token (`eos_token` variable).
    pub eos_token: String,
    /// The OpenAI `tools` array (`tools` variable); `None` renders `tools`
    /// as `None`, as transformers does without tools. Key order is kept.
    pub tools: Option<serde_json::Value>,
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source` once; a syntax error is reported with its line.
    pub fn new(source: &str) -> Result<Self, ChatError> {
        let mut env = env::hf_environment();
        let source = env::rewrite_generation_tags(source);
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(ChatError::from_compile)?;
        Ok(Self { env })
    }

    /// The ChatML fallback, for model files without `tokenizer.chat_template`.
    pub fn chatml() -> Self {
        match Self::new(CHATML_SOURCE) {
            Ok(t) => t,
            // The source is a constant covered by tests; failing here would be
            // a bug in this crate, not bad input.
            Err(e) => unreachable!("built-in ChatML template does not compile: {e}"),
        }
    }

    /// Renders `messages` into the prompt text.
    pub fn render(&self, messages: &[Message], opts: &RenderOptions) -> Result<String, ChatError> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(ChatError::from_render)?;
        let base = context! {
            messages => Value::from_serialize(messages),
            tools => match &opts.tools {
                Some(tools) => Value::from_serialize(tools),
                None => Value::from(()),
            },
            documents => Value::from(()),
            add_generation_prompt => opts.add_generation_prompt,
            bos_token => opts.bos_token.as_str(),
            eos_token => opts.eos_token.as_str(),
        };
        let ctx = match opts.enable_thinking {
            Some(on) => context! { enable_thinking => on, ..base },
            None => base,
        };
        // minijinja 2.24 panics on some inputs instead of returning an error
        // (reverse-slicing an empty sequence, `x[::-1]`, indexes past its end
        // in `range_step_backwards`; Qwen3 templates do `messages[::-1]`).
        // Templates come from model files, so a panic is turned into an error.
        match std::panic::catch_unwind(AssertUnwindSafe(|| tmpl.render(ctx))) {
            Ok(rendered) => rendered.map_err(ChatError::from_render),
            Err(payload) => Err(ChatError::Render {
                line: 0,
                reason: format!(
                    "template engine failed internally: {}",
                    panic_message(payload.as_ref())
                ),
            }),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

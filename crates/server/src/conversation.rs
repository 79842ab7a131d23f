//! The request path every chat-shaped endpoint shares (chat completions,
//! Responses, Anthropic Messages): messages and tools rendered by the
//! model's template, the output grammar compiled (a forced tool call or the
//! request's response format), the generation submitted, and a [`Turn`]
//! that parses what comes back.

use crate::error::{ApiError, ApiResult};
use crate::params::Generation;
use crate::state::AppState;
use crate::tools::Tools;
use crate::turn::Turn;
use shohin_chat::{Message, ParserOptions, RenderOptions};
use shohin_engine::scheduler::{Request, Task};
use std::sync::Arc;

pub struct Conversation {
    pub messages: Vec<Message>,
    pub tools: Tools,
    /// `enable_thinking` for the template (`None`: the template's default).
    pub enable_thinking: Option<bool>,
}

/// A submitted turn and what its response needs to know.
pub struct Started {
    pub turn: Turn,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
}

/// Renders, compiles, submits. `messages_param` names the request field a
/// template failure or a too-long prompt is blamed on.
pub async fn start(
    st: &Arc<AppState>,
    conv: Conversation,
    mut g: Generation,
    messages_param: &'static str,
) -> ApiResult<Started> {
    let forced = conv.tools.forced_grammar();
    if forced.is_some() {
        if let Some((_, p)) = &g.grammar {
            return Err(ApiError::invalid(
                *p,
                format!("'{p}' cannot be combined with a tool_choice that forces a tool call"),
            ));
        }
    }
    let grammar = forced.map(|s| (s, "tools")).or(g.grammar.take());
    // A forced call starts at once: thinking first would be outside the
    // grammar, so templates that can think are told not to.
    let enable_thinking = if grammar.is_some() && conv.enable_thinking.is_none() {
        Some(false)
    } else {
        conv.enable_thinking
    };
    let tools_value = conv.tools.template_value();
    let parse_calls = conv.tools.parse_calls();
    let st2 = st.clone();
    let (prompt, opens_reasoning, constraint) = tokio::task::spawn_blocking(move || {
        let tok = &st2.tokenizer;
        let text_of =
            |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
        let opts = RenderOptions {
            add_generation_prompt: true,
            enable_thinking,
            bos_token: text_of(tok.bos()),
            eos_token: text_of(tok.eos()),
            tools: tools_value,
        };
        let text = st2.template.render(&conv.messages, &opts).map_err(|e| {
            ApiError::invalid(messages_param, format!("the chat template failed: {e}"))
        })?;
        let constraint = match &grammar {
            None => None,
            Some((spec, param)) => Some(st2.compile_grammar(spec, param)?),
        };
        Ok::<_, ApiError>((
            tok.encode(&text, true, true),
            ParserOptions::prompt_opens_reasoning(&text),
            constraint,
        ))
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering the chat template: {e}")))??;
    g.params.constraint = constraint;
    let opts = ParserOptions {
        starts_in_reasoning: opens_reasoning,
        reasoning: !st.raw_reasoning,
        tools: parse_calls,
    };
    let logprobs = g.params.logprobs.is_some();
    let req = Request {
        prompt,
        task: Task::Generate {
            params: g.params,
            n: g.n,
        },
        lora: g.lora,
    };
    let rx = st
        .engine
        .submit(req)
        .map_err(|e| ApiError::from_submit(e, messages_param))?;
    Ok(Started {
        turn: Turn::new(rx, g.n, opts),
        n: g.n,
        stream: g.stream,
        include_usage: g.include_usage,
        logprobs,
    })
}

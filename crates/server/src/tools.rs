//! `tools`, `tool_choice` and `parallel_tool_calls` (OpenAI's chat
//! completions shapes; the Responses and Anthropic endpoints convert their
//! own shapes to [`Tool`] and [`ToolChoice`]).
//!
//! The tools are rendered by the model's own chat template (the `tools`
//! variable); the model answers with Qwen/Hermes `<tool_call>` blocks, which
//! `shohin_chat::OutputParser` turns into calls. `tool_choice: "required"`
//! and a named function are enforced with a grammar: the output must be one
//! (or, for `required` with `parallel_tool_calls`, one or more) `<tool_call>` blocks whose
//! JSON is `{"name": <a tool>, "arguments": <its parameters' schema>}`, so
//! the call always parses and validates. `"none"` renders no tools.

use crate::body::{type_name, Fields};
use crate::error::{ApiError, ApiResult};
use serde_json::{json, Map, Value};
use shohin_grammar::GrammarSpec;

/// One function the model may call.
#[derive(Clone, Debug)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// A JSON schema of the arguments (an object schema).
    pub parameters: Value,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// The tools of a request, resolved.
#[derive(Clone, Debug)]
pub struct Tools {
    pub tools: Vec<Tool>,
    pub choice: ToolChoice,
    pub parallel: bool,
}

impl Tools {
    /// The `tools` template variable (OpenAI's shape, which Hugging Face
    /// templates expect), or `None` when no tool may be called.
    pub fn template_value(&self) -> Option<Value> {
        if self.tools.is_empty() || self.choice == ToolChoice::None {
            return None;
        }
        Some(Value::Array(
            self.tools
                .iter()
                .map(|t| {
                    let mut f = Map::new();
                    f.insert("name".into(), Value::from(t.name.clone()));
                    if let Some(d) = &t.description {
                        f.insert("description".into(), Value::from(d.clone()));
                    }
                    f.insert("parameters".into(), t.parameters.clone());
                    json!({"type": "function", "function": Value::Object(f)})
                })
                .collect(),
        ))
    }

    /// The grammar that forces a call (`required` or a named function).
    pub fn forced_grammar(&self) -> Option<GrammarSpec> {
        let allowed: Vec<&Tool> = match &self.choice {
            ToolChoice::None | ToolChoice::Auto => return None,
            ToolChoice::Required => self.tools.iter().collect(),
            ToolChoice::Named(n) => self.tools.iter().filter(|t| &t.name == n).collect(),
        };
        let alternatives: Vec<Value> = allowed
            .iter()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {
                        "name": {"const": t.name},
                        "arguments": t.parameters,
                    },
                    "required": ["name", "arguments"],
                    "additionalProperties": false,
                })
            })
            .collect();
        let mut schema = if alternatives.len() == 1 {
            alternatives.into_iter().next().unwrap_or_default()
        } else {
            json!({ "anyOf": alternatives })
        };
        schema["x-guidance"] = shohin_grammar::json_layout();
        // Qwen's format, as its template shows the model (one block per
        // call, blocks separated by a newline).
        // A named function is called once (as OpenAI does); `required`
        // allows several calls unless `parallel_tool_calls` is false.
        let several = self.parallel && self.choice == ToolChoice::Required;
        let repeat = if several { " (\"\\n\" call)*" } else { "" };
        Some(GrammarSpec::Lark(format!(
            "start: call{repeat}\ncall: \"<tool_call>\\n\" body \"\\n</tool_call>\"\nbody: %json {schema}\n"
        )))
    }

    /// Whether the output is to be parsed for `<tool_call>` blocks.
    pub fn parse_calls(&self) -> bool {
        self.template_value().is_some()
    }
}

/// A function name as OpenAI allows it: 1 to 64 of `a-zA-Z0-9_-`.
fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// One function definition: `name`, optional `description`, optional
/// `parameters` (an object schema; absent means no arguments).
pub fn tool_from(f: &Fields<'_>) -> ApiResult<Tool> {
    let name = f.str("name")?.ok_or_else(|| {
        ApiError::invalid(f.name("name"), format!("'{}' is required", f.name("name")))
    })?;
    if !valid_name(name) {
        return Err(ApiError::invalid(
            f.name("name"),
            format!(
                "'{}' = '{name}' must be 1 to 64 letters, digits, '_' or '-'",
                f.name("name")
            ),
        ));
    }
    let description = f.str("description")?.map(str::to_string);
    let parameters = parameters_of(f, "parameters")?;
    Ok(Tool {
        name: name.to_string(),
        description,
        parameters,
    })
}

/// A parameters schema at `key` (absent: an empty object).
pub fn parameters_of(f: &Fields<'_>, key: &str) -> ApiResult<Value> {
    match f.get(key) {
        None | Some(Value::Null) => Ok(json!({"type": "object", "properties": {}})),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(v) => Err(ApiError::invalid(
            f.name(key),
            format!(
                "'{}' must be a JSON schema object, got {}",
                f.name(key),
                type_name(v)
            ),
        )),
    }
}

/// A `tools` array (absent: no tools): each entry an object, read by `one`
/// with its fields named `tools[i].…`. Shared by the chat, Responses and
/// Anthropic shapes, which differ only in what one entry holds.
pub fn parse_list(
    listed: Option<&Value>,
    one: impl Fn(&Fields<'_>) -> ApiResult<Tool>,
) -> ApiResult<Vec<Tool>> {
    let a = match listed {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::invalid(
                "tools",
                format!("'tools' must be an array, got {}", type_name(v)),
            ))
        }
    };
    a.iter()
        .enumerate()
        .map(|(i, t)| {
            let p = format!("tools[{i}]");
            let Value::Object(o) = t else {
                return Err(ApiError::invalid(
                    p.clone(),
                    format!("'{p}' must be an object, got {}", type_name(t)),
                ));
            };
            one(&Fields::nested(o, p))
        })
        .collect()
}

/// A tool entry's `type`, which must be given and be `want`.
pub fn require_type(tf: &Fields<'_>, want: &str) -> ApiResult<()> {
    match tf.str("type")? {
        Some(t) if t == want => Ok(()),
        Some(other) => Err(ApiError::invalid(
            tf.name("type"),
            format!("tools of type '{other}' are not supported; only '{want}'"),
        )),
        None => Err(ApiError::invalid(
            tf.name("type"),
            format!("'{}' is required", tf.name("type")),
        )),
    }
}

/// OpenAI's string `tool_choice` (chat and Responses).
pub fn choice_of(s: &str) -> ApiResult<ToolChoice> {
    match s {
        "none" => Ok(ToolChoice::None),
        "auto" => Ok(ToolChoice::Auto),
        "required" => Ok(ToolChoice::Required),
        other => Err(ApiError::invalid(
            "tool_choice",
            format!("'tool_choice' = '{other}' is not one of none, auto, required"),
        )),
    }
}

/// OpenAI chat's `tools` (`[{"type": "function", "function": {...}}]`),
/// `tool_choice` and `parallel_tool_calls`.
pub fn parse_openai(f: &Fields<'_>) -> ApiResult<Tools> {
    let listed = match f.get("tools") {
        Some(Value::Null) => None,
        v => v,
    };
    let tools = parse_list(listed, |tf| {
        require_type(tf, "function")?;
        let func = tf.object("function")?.ok_or_else(|| {
            ApiError::invalid(
                tf.name("function"),
                format!("'{}' is required", tf.name("function")),
            )
        })?;
        tool_from(&Fields::nested(func, tf.name("function")))
    })?;
    let choice = match f.get("tool_choice") {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => choice_of(s)?,
        Some(Value::Object(o)) => {
            let cf = Fields::nested(o, "tool_choice");
            let name = cf
                .object("function")?
                .map(|func| Fields::nested(func, "tool_choice.function").str("name"))
                .transpose()?
                .flatten()
                .ok_or_else(|| {
                    ApiError::invalid(
                        "tool_choice.function.name",
                        "'tool_choice' must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    )
                })?;
            ToolChoice::Named(name.to_string())
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
    resolve(tools, choice, parallel, "tool_choice")
}

/// Checks the choice against the tools.
pub fn resolve(
    tools: Vec<Tool>,
    choice: ToolChoice,
    parallel: bool,
    choice_param: &str,
) -> ApiResult<Tools> {
    match &choice {
        ToolChoice::Required if tools.is_empty() => {
            return Err(ApiError::invalid(
                choice_param,
                format!("'{choice_param}' requires a tool call but no tools were given"),
            ))
        }
        ToolChoice::Named(n) if !tools.iter().any(|t| &t.name == n) => {
            return Err(ApiError::invalid(
                choice_param,
                format!("'{choice_param}' names the function '{n}', which is not among the tools"),
            ))
        }
        _ => {}
    }
    let mut seen = std::collections::HashSet::new();
    for t in &tools {
        if !seen.insert(t.name.as_str()) {
            return Err(ApiError::invalid(
                "tools",
                format!("the function name '{}' is given twice", t.name),
            ));
        }
    }
    Ok(Tools {
        tools,
        choice,
        parallel,
    })
}

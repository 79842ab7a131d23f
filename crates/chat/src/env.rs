//! The minijinja environment, set up like transformers' jinja2 environment
//! (`_compile_jinja_template` in `transformers/utils/chat_template_utils.py`):
//! `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
//! extensions=[AssistantTracker, jinja2.ext.loopcontrols])` plus the
//! `tojson` filter and the `raise_exception` / `strftime_now` globals.

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use crate::error::RaisedByTemplate;

/// Instruction budget per render. Real templates use a few hundred
/// instructions per message; this bounds a hostile template from a model file
/// (e.g. `range` loops nested deeply) without limiting real conversations.
const FUEL_PER_RENDER: u64 = 50_000_000;

/// Builds the environment (without the template itself).
pub(crate) fn hf_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // jinja2's default; transformers does not change it.
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // jinja2's default `Undefined`: printing/iterating/testing is fine,
    // attribute access on it is an error.
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_debug(false);
    env.set_fuel(Some(FUEL_PER_RENDER));
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python_formatter);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson_filter);
    env.add_test("iterable", is_iterable);
    env
}

/// jinja2's `iterable` test is `iter(value)` succeeding: true for strings,
/// lists, dicts and `Undefined` (which iterates as empty), false for `None`,
/// numbers and booleans. minijinja's own test also says true for `none`,
/// which breaks the common `tools is iterable and tools | length > 0` guard.
fn is_iterable(value: &Value) -> bool {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Number => false,
        ValueKind::Undefined | ValueKind::String => true,
        _ => value.try_iter().is_ok(),
    }
}

/// `{{ x }}` writes Python's `str(x)` (jinja2), see [`crate::pyrepr`].
fn python_formatter(
    out: &mut Output<'_>,
    state: &State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    if crate::pyrepr::needs_python_str(value) {
        let mut text = String::new();
        crate::pyrepr::python_str(value, &mut text);
        return out.write_str(&text).map_err(Error::from);
    }
    minijinja::escape_formatter(out, state, value)
}

/// `raise_exception(message)`: transformers raises
/// `jinja2.exceptions.TemplateError(message)`.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message.clone())
        .with_source(RaisedByTemplate(message)))
}

/// `strftime_now(format)`: transformers returns
/// `datetime.now().strftime(format)`. We format the current time in UTC (no
/// time-zone database here); model hosts normally run in UTC anyway.
fn strftime_now(format: String) -> Result<Value, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Ok(Value::from(crate::strftime::format_utc(secs, &format)))
}

/// `x | tojson(ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)` — transformers' replacement for jinja2's HTML-safe
/// `tojson`; arguments may be positional, as in Python.
fn tojson_filter(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    const NAMES: [&str; 4] = ["ensure_ascii", "indent", "separators", "sort_keys"];
    if args.len() > NAMES.len() {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            "tojson takes at most 4 arguments",
        ));
    }
    let mut slots: [Option<Value>; 4] = Default::default();
    for (slot, arg) in slots.iter_mut().zip(args.iter()) {
        *slot = Some(arg.clone());
    }
    for (slot, name) in slots.iter_mut().zip(NAMES) {
        if let Some(v) = kwargs.get::<Option<Value>>(name)? {
            if slot.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson got multiple values for argument '{name}'"),
                ));
            }
            *slot = Some(v);
        }
    }
    kwargs.assert_all_used()?;
    let [ensure_ascii, indent, separators, sort_keys] = slots;
    let opts =
        crate::tojson::JsonOptions::from_values(ensure_ascii, indent, separators, sort_keys)?;
    let text = crate::tojson::dumps(value, &opts)?;
    Ok(Value::from_safe_string(text))
}

/// transformers' `AssistantTracker` extension adds a `{% generation %}` …
/// `{% endgeneration %}` block that, outside training, renders its body
/// unchanged. minijinja has no custom tags, so each tag is rewritten in place
/// to `{% if true %}` / `{% endif %}`, keeping the whitespace-control markers
/// (`-`, `+`) and line numbers intact.
pub(crate) fn rewrite_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(pos) = rest.find("{%") {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos..];
        match generation_tag(tag) {
            Some((len, replacement)) => {
                out.push_str(&replacement);
                rest = &tag[len..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `tag` (starting at `{%`) is a generation/endgeneration tag, returns its
/// length and the replacement text.
fn generation_tag(tag: &str) -> Option<(usize, String)> {
    let body_start = 2;
    let end = tag.find("%}")?;
    let inner = &tag[body_start..end];
    let (open_marker, inner) = split_marker_front(inner);
    let (inner, close_marker) = split_marker_back(inner);
    let word = inner.trim();
    let replacement_word = match word {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return None,
    };
    Some((
        end + 2,
        format!("{{%{open_marker} {replacement_word} {close_marker}%}}"),
    ))
}

fn split_marker_front(s: &str) -> (&str, &str) {
    match s.chars().next() {
        Some('-') | Some('+') => (&s[..1], &s[1..]),
        _ => ("", s),
    }
}

fn split_marker_back(s: &str) -> (&str, &str) {
    match s.chars().last() {
        Some('-') | Some('+') => (&s[..s.len() - 1], &s[s.len() - 1..]),
        _ => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite_generation_tags;

    #[test]
    fn generation_tags_rewritten_with_markers() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation %}b{% endgeneration -%}c{% if x %}"),
            "a{%- if true %}b{% endif -%}c{% if x %}"
        );
        assert_eq!(rewrite_generation_tags("{%"), "{%");
        assert_eq!(
            rewrite_generation_tags("{% generations %}"),
            "{% generations %}"
        );
    }
}

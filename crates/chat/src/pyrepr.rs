//! How jinja2 prints values: `{{ x }}` writes Python's `str(x)`, so `None`,
//! `True`, `1e+16`, `['a', 'b']` and `{'k': 1}` — not minijinja's `none`,
//! `true`, `["a", "b"]`. Strings at top level print as themselves; inside
//! containers they use `repr` quoting (CPython `unicode_repr`).

use std::fmt::Write as _;

use minijinja::value::{Value, ValueKind};

use crate::tojson::python_float_repr;

/// Deeper nesting prints `...`, as CPython does for recursive containers;
/// bounds recursion on self-similar template values.
const MAX_DEPTH: usize = 256;

/// `str(value)` as Python would print it.
pub(crate) fn python_str(value: &Value, out: &mut String) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::String => out.push_str(value.as_str().unwrap_or_default()),
        _ => python_repr(value, out, 0),
    }
}

/// Whether [`python_str`] differs from minijinja's own output for this value
/// (the formatter keeps minijinja's path for strings and integers).
pub(crate) fn needs_python_str(value: &Value) -> bool {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => true,
        ValueKind::Number => !value.is_integer(),
        _ => false,
    }
}

fn python_repr(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number if !value.is_integer() => match f64::try_from(value.clone()) {
            Ok(x) => out.push_str(&float_str(x)),
            Err(_) => {
                let _ = write!(out, "{value}");
            }
        },
        ValueKind::String => string_repr(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            if let Ok(iter) = value.try_iter() {
                for (i, item) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&item, out, depth + 1);
                }
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            if let Ok(iter) = value.try_iter() {
                for (i, key) in iter.enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    python_repr(&key, out, depth + 1);
                    out.push_str(": ");
                    let item = value.get_item(&key).unwrap_or_default();
                    python_repr(&item, out, depth + 1);
                }
            }
            out.push('}');
        }
        _ => {
            let _ = write!(out, "{value}");
        }
    }
}

/// Python's `str(float)`: like `repr`, but `inf`/`nan` (json writes
/// `Infinity`/`NaN`).
fn float_str(x: f64) -> String {
    if x.is_nan() {
        "nan".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        python_float_repr(x)
    }
}

/// CPython `unicode_repr`: single quotes unless the text has `'` and no `"`;
/// backslash, the quote, `\t \n \r` escaped; other C0/C1 controls as `\xNN`.
fn string_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

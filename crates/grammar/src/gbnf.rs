//! llama.cpp's GBNF (`grammars/README.md`, parsed by `src/llama-grammar.cpp`)
//! translated to llguidance's Lark dialect, which has the same expressive
//! power (a context-free grammar over characters) but other spellings:
//!
//! | GBNF                         | Lark (llguidance)                      |
//! |------------------------------|----------------------------------------|
//! | `name ::= body` (any case, `-`) | `gname: body` (lower case, see [`rule_name`]) |
//! | `root`                       | `start: groot`                         |
//! | `"lit"` with `\xHH \uHHHH \UHHHHHHHH \n \r \t \\ \" \[ \]` | a JSON string |
//! | `[a-z]`, `[^"\\]`            | `/[\x{61}-\x{7A}]/` (regex class)      |
//! | `.` (any character)          | `/(?s:.)/`                             |
//! | `( ) \| * + ? {m} {m,} {m,n} {,n}` | the same                       |
//! | `# comment`                  | dropped                                |
//!
//! A rule's body may span lines; every rule is emitted on one line. Errors
//! name the line of the GBNF text.

use crate::GrammarError;
use std::fmt::Write;

#[derive(Debug, PartialEq)]
enum Tok {
    Name(String),
    Def,
    /// A literal's decoded text.
    Lit(String),
    /// A character class as a Lark regex terminal.
    Class(String),
    Any,
    /// `( ) | * + ?` or a `{...}` repetition, copied as is.
    Punct(String),
}

fn err(line: usize, msg: impl std::fmt::Display) -> GrammarError {
    GrammarError::Invalid(format!("GBNF line {line}: {msg}"))
}

/// `name` as a Lark rule name: GBNF names are `[a-zA-Z0-9-]+`; Lark rules
/// must be lower case, so an upper-case letter `X` becomes `_x` (GBNF has no
/// `_`, so no two names collide) and every name gets a `g` prefix (a Lark
/// rule must start with a letter).
pub fn rule_name(name: &str) -> String {
    let mut out = String::from("g");
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Translates a GBNF grammar whose start rule is `root`.
pub fn to_lark(src: &str) -> Result<String, GrammarError> {
    let toks = lex(src)?;
    // Split into rules: a rule starts at `Name Def`.
    let mut rules: Vec<(String, usize, Vec<&Tok>)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (line, t) = &toks[i];
        if let (Tok::Name(n), Some((_, Tok::Def))) = (t, toks.get(i + 1)) {
            rules.push((n.clone(), *line, Vec::new()));
            i += 2;
            continue;
        }
        match rules.last_mut() {
            Some(r) => r.2.push(t),
            None => return Err(err(*line, "expected a rule definition `name ::= ...`")),
        }
        i += 1;
    }
    if !rules.iter().any(|r| r.0 == "root") {
        return Err(GrammarError::Invalid(
            "GBNF grammar has no `root` rule".to_string(),
        ));
    }
    let defined: std::collections::HashSet<&str> = rules.iter().map(|r| r.0.as_str()).collect();
    let mut out = String::from("start: groot\n");
    for (name, line, body) in &rules {
        if body.is_empty() {
            return Err(err(*line, format!("rule `{name}` has an empty body")));
        }
        let mut depth = 0i32;
        for t in body {
            match t {
                Tok::Punct(p) if p == "(" => depth += 1,
                Tok::Punct(p) if p == ")" => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return Err(err(*line, format!("unbalanced `)` in rule `{name}`")));
            }
        }
        if depth != 0 {
            return Err(err(*line, format!("unclosed `(` in rule `{name}`")));
        }
        let _ = write!(out, "{}:", rule_name(name));
        for t in body {
            out.push(' ');
            match t {
                Tok::Name(n) => {
                    if !defined.contains(n.as_str()) {
                        return Err(err(*line, format!("rule `{n}` is used but not defined")));
                    }
                    out.push_str(&rule_name(n));
                }
                Tok::Lit(s) => out.push_str(&lark_string(s)),
                Tok::Class(c) => out.push_str(c),
                Tok::Any => out.push_str("/(?s:.)/"),
                Tok::Punct(p) => out.push_str(p),
                Tok::Def => return Err(err(*line, "unexpected `::=`")),
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// A Lark string literal (JSON syntax). An empty GBNF literal matches the
/// empty string, which Lark spells as an empty group.
fn lark_string(s: &str) -> String {
    if s.is_empty() {
        return "\"\"?".to_string();
    }
    serde_json::Value::String(s.to_string()).to_string()
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, GrammarError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ':' => {
                if chars.get(i + 1) == Some(&':') && chars.get(i + 2) == Some(&'=') {
                    out.push((line, Tok::Def));
                    i += 3;
                } else {
                    return Err(err(line, "expected `::=`"));
                }
            }
            '"' => {
                let (s, next) = literal(&chars, i + 1, line)?;
                out.push((line, Tok::Lit(s)));
                i = next;
            }
            '[' => {
                let (s, next) = class(&chars, i + 1, line)?;
                out.push((line, Tok::Class(s)));
                i = next;
            }
            '.' => {
                out.push((line, Tok::Any));
                i += 1;
            }
            '(' | ')' | '|' | '*' | '+' | '?' => {
                out.push((line, Tok::Punct(c.to_string())));
                i += 1;
            }
            '{' => {
                let start = i;
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                if i == chars.len() {
                    return Err(err(line, "unterminated `{` repetition"));
                }
                let inner: String = chars[start + 1..i]
                    .iter()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let ok = !inner.is_empty()
                    && inner.chars().all(|c| c.is_ascii_digit() || c == ',')
                    && inner.matches(',').count() <= 1
                    && inner != ",";
                if !ok {
                    return Err(err(line, format!("bad repetition `{{{inner}}}`")));
                }
                // `{,n}` is GBNF for `{0,n}`.
                let inner = if inner.starts_with(',') {
                    format!("0{inner}")
                } else {
                    inner
                };
                out.push((line, Tok::Punct(format!("{{{inner}}}"))));
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == '-' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '-') {
                    i += 1;
                }
                out.push((line, Tok::Name(chars[start..i].iter().collect())));
            }
            other => return Err(err(line, format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

/// One (possibly escaped) character of a literal or class at `i`.
fn char_at(chars: &[char], i: usize, line: usize) -> Result<(char, usize), GrammarError> {
    let c = *chars
        .get(i)
        .ok_or_else(|| err(line, "unexpected end of grammar"))?;
    if c != '\\' {
        return Ok((c, i + 1));
    }
    let e = *chars
        .get(i + 1)
        .ok_or_else(|| err(line, "unexpected end after `\\`"))?;
    let hex = |n: usize| -> Result<(char, usize), GrammarError> {
        let digits: String = chars.get(i + 2..i + 2 + n).unwrap_or(&[]).iter().collect();
        let v = u32::from_str_radix(&digits, 16)
            .ok()
            .filter(|_| digits.len() == n)
            .ok_or_else(|| err(line, format!("bad escape `\\{e}{digits}`")))?;
        let ch = char::from_u32(v)
            .ok_or_else(|| err(line, format!("`\\{e}{digits}` is not a character")))?;
        Ok((ch, i + 2 + n))
    };
    match e {
        'x' => hex(2),
        'u' => hex(4),
        'U' => hex(8),
        'n' => Ok(('\n', i + 2)),
        'r' => Ok(('\r', i + 2)),
        't' => Ok(('\t', i + 2)),
        '\\' | '"' | '[' | ']' | '-' | '^' => Ok((e, i + 2)),
        other => Err(err(line, format!("unknown escape `\\{other}`"))),
    }
}

fn literal(chars: &[char], mut i: usize, line: usize) -> Result<(String, usize), GrammarError> {
    let mut s = String::new();
    loop {
        match chars.get(i) {
            None | Some('\n') => return Err(err(line, "unterminated string literal")),
            Some('"') => return Ok((s, i + 1)),
            _ => {
                let (c, next) = char_at(chars, i, line)?;
                s.push(c);
                i = next;
            }
        }
    }
}

fn class(chars: &[char], mut i: usize, line: usize) -> Result<(String, usize), GrammarError> {
    let mut re = String::from("/[");
    if chars.get(i) == Some(&'^') {
        re.push('^');
        i += 1;
    }
    let mut n_items = 0;
    loop {
        match chars.get(i) {
            None | Some('\n') => return Err(err(line, "unterminated character class")),
            Some(']') if n_items > 0 => break,
            Some(']') => return Err(err(line, "empty character class")),
            _ => {
                let (lo, next) = char_at(chars, i, line)?;
                i = next;
                let _ = write!(re, "\\x{{{:X}}}", lo as u32);
                if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
                    let (hi, next) = char_at(chars, i + 1, line)?;
                    if hi < lo {
                        return Err(err(line, format!("bad range `{lo}-{hi}`")));
                    }
                    i = next;
                    let _ = write!(re, "-\\x{{{:X}}}", hi as u32);
                }
                n_items += 1;
            }
        }
    }
    re.push_str("]/");
    Ok((re, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_rules_literals_classes_and_repetitions() {
        let g = "root ::= \"a\\n\" [0-9]{1,3} item*  # comment\nitem ::= ( \"x\" | [^\"\\\\] | . )+ Item-B?\nItem-B ::= \"\" {2,}";
        let l = to_lark(g).unwrap();
        assert_eq!(
            l,
            "start: groot\n\
             groot: \"a\\n\" /[\\x{30}-\\x{39}]/ {1,3} gitem *\n\
             gitem: ( \"x\" | /[^\\x{22}\\x{5C}]/ | /(?s:.)/ ) + g_item-_b ?\n\
             g_item-_b: \"\"? {2,}\n"
        );
    }

    #[test]
    fn multi_line_bodies_and_escapes() {
        let g = "root ::= (\n  \"\\u00e9\" |\n  \"\\x41\"\n)\n";
        assert_eq!(
            to_lark(g).unwrap(),
            "start: groot\ngroot: ( \"é\" | \"A\" )\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (g, want) in [
            ("item ::= \"a\"", "no `root` rule"),
            ("root ::= \"a", "line 1: unterminated string literal"),
            ("root ::= x\n", "line 1: rule `x` is used but not defined"),
            ("root ::= \"a\"\nfoo := \"b\"", "line 2: expected `::=`"),
            ("root ::= [z-a]", "bad range"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("root ::= \"a\"{x}", "bad repetition"),
            ("root ::= (\"a\"", "line 1: unclosed `(` in rule `root`"),
            ("root ::= \"a\")", "line 1: unbalanced `)`"),
            ("\"a\"", "expected a rule definition"),
        ] {
            let e = to_lark(g).unwrap_err().to_string();
            assert!(e.contains(want), "{g:?}: {e}");
        }
    }
}

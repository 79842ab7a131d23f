//! `run` and `chat` with `--json-schema`, `--json-schema-file`,
//! `--grammar` and `--grammar-file` on the real model: the output follows
//! the grammar at temperature 1.0; bad flags are clear errors (exit 1).

mod common;
use common::*;
use serde_json::Value;

const SCHEMA: &str = r#"{"type": "object",
  "properties": {"city": {"type": "string", "maxLength": 20},
                 "population": {"type": "integer", "minimum": 0}},
  "required": ["city", "population"], "additionalProperties": false}"#;

fn prompt(q: &str) -> String {
    format!("<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
}

#[test]
fn run_follows_a_json_schema_from_a_file_or_inline() {
    let model = s(&real_model());
    let dir = scratch("grammar-cli-schema");
    let file = dir.join("schema.json");
    std::fs::write(&file, SCHEMA).unwrap();
    let p = prompt("Name a big city.");
    for (seed, flag, value) in [
        ("1", "--json-schema", s(&file)),
        ("2", "--json-schema", SCHEMA.to_string()),
        ("3", "--json-schema-file", s(&file)),
    ] {
        let args = [
            "run", "-m", &model, "-t", "2", "--temp", "1", "--seed", seed, "-n", "100", "--json",
            flag, &value, "-p", &p,
        ];
        let j = shohin(&args).ok().json();
        let text = j["text"].as_str().unwrap();
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 2, "{text}");
        assert!(o["city"].as_str().unwrap().chars().count() <= 20, "{text}");
        assert!(o["population"].as_i64().unwrap() >= 0, "{text}");
        assert!(j["timings"]["sampling_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn run_and_chat_follow_a_gbnf_grammar() {
    let model = s(&real_model());
    let dir = scratch("grammar-cli-gbnf");
    let file = dir.join("yesno.gbnf");
    std::fs::write(
        &file,
        "root ::= (\"yes\" | \"no\") \", because \" [a-z ]{5,30} \".\"\n",
    )
    .unwrap();
    let p = prompt("Is the sea salty?");
    let j = shohin(&[
        "run",
        "-m",
        &model,
        "-t",
        "2",
        "--temp",
        "1",
        "--seed",
        "4",
        "--json",
        "--grammar-file",
        &s(&file),
        "-p",
        &p,
    ])
    .ok()
    .json();
    let text = j["text"].as_str().unwrap();
    assert!(
        text.starts_with("yes, because ") || text.starts_with("no, because "),
        "{text}"
    );
    assert!(text.ends_with('.'), "{text}");
    // chat: each answer follows the grammar afresh.
    let out = shohin_stdin(
        &[
            "chat",
            "-m",
            &model,
            "-t",
            "2",
            "--temp",
            "1",
            "--seed",
            "5",
            "--grammar",
            "root ::= [0-9]{1,3}",
        ],
        Some(b"How many legs has a spider?\nAnd a cat?\n"),
    )
    .ok();
    let answers: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.trim_start_matches("> ").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(answers.len(), 2, "{out}");
    for a in answers {
        assert!(
            (1..=3).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_digit()),
            "{out}"
        );
    }
}

#[test]
fn bad_grammar_flags_are_clear_errors() {
    let model = s(&real_model());
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--json-schema", "{not json"],
            &["--json-schema", "not valid JSON"],
        ),
        (
            &["--grammar", "root ::= (\"a\""],
            &["GBNF line 1", "unclosed"],
        ),
        (
            &["--grammar-file", "/nonexistent/g.gbnf"],
            &["--grammar-file", "/nonexistent/g.gbnf"],
        ),
        (
            &["--json-schema", r#"{"type": "object", "if": {}}"#],
            &["Unimplemented keys"],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["run", "-m", &model, "-n", "4", "-p", "x"];
        args.extend_from_slice(flags);
        assert_fails_with(&shohin(&args), 1, needles);
    }
    let both = shohin(&[
        "run",
        "-m",
        &model,
        "-n",
        "4",
        "-p",
        "x",
        "--grammar",
        "root ::= \"a\"",
        "--json-schema",
        "{}",
    ]);
    assert_fails_with(&both, 1, &["only one of", "--json-schema", "--grammar"]);
}

//! The output parser: expected results written out by hand from the formats
//! (Qwen3 `<think>`, Qwen/Hermes `<tool_call>`) and llama.cpp's whitespace
//! rules, and the streaming parser giving the same result however the text
//! is split into pieces.

use proptest::prelude::*;
use shohin_chat::{parse_output, Delta, OutputParser, ParsedOutput, ParsedToolCall, ParserOptions};

const THINK: ParserOptions = ParserOptions {
    starts_in_reasoning: false,
    reasoning: true,
    tools: false,
};
const THINK_TOOLS: ParserOptions = ParserOptions {
    starts_in_reasoning: false,
    reasoning: true,
    tools: true,
};
const FORCED: ParserOptions = ParserOptions {
    starts_in_reasoning: true,
    reasoning: true,
    tools: true,
};
const TOOLS: ParserOptions = ParserOptions {
    starts_in_reasoning: false,
    reasoning: false,
    tools: true,
};
const PLAIN: ParserOptions = ParserOptions {
    starts_in_reasoning: false,
    reasoning: false,
    tools: false,
};

fn out(reasoning: Option<&str>, content: &str, calls: &[(&str, &str)]) -> ParsedOutput {
    ParsedOutput {
        reasoning: reasoning.map(str::to_string),
        content: content.to_string(),
        tool_calls: calls
            .iter()
            .map(|(n, a)| ParsedToolCall {
                name: n.to_string(),
                arguments: a.to_string(),
            })
            .collect(),
    }
}

/// (name, options, model output, expected result)
fn cases() -> Vec<(&'static str, ParserOptions, &'static str, ParsedOutput)> {
    vec![
        (
            "reasoning then answer",
            THINK,
            "<think>\nThe user greets me.\n\n</think>\n\nHello! How can I help?",
            out(Some("The user greets me."), "Hello! How can I help?", &[]),
        ),
        (
            "whitespace before think",
            THINK,
            " \n<think>a < b </thi</think>  x",
            out(Some("a < b </thi"), "x", &[]),
        ),
        (
            "answer only",
            THINK_TOOLS,
            "Paris is the capital of France.\n",
            out(None, "Paris is the capital of France.\n", &[]),
        ),
        (
            "answer with a later think tag",
            THINK,
            "Use <think> tags like <think>this</think>.",
            out(None, "Use <think> tags like <think>this</think>.", &[]),
        ),
        (
            "unclosed think",
            THINK,
            "<think>\nStill thinking about 2+2 \n",
            out(Some("Still thinking about 2+2"), "", &[]),
        ),
        (
            "empty think (enable_thinking=false style)",
            THINK,
            "<think>\n\n</think>\n\nIt is 4.",
            out(None, "It is 4.", &[]),
        ),
        (
            "reasoning disabled: think is content",
            PLAIN,
            "<think>x</think>y",
            out(None, "<think>x</think>y", &[]),
        ),
        (
            "starts in reasoning",
            FORCED,
            "Let me see.\nOK.\n</think>\n\nDone.",
            out(Some("Let me see.\nOK."), "Done.", &[]),
        ),
        (
            "starts in reasoning, never closed",
            FORCED,
            "  thinking <tool_call> forever  ",
            out(Some("thinking <tool_call> forever"), "", &[]),
        ),
        (
            "one call",
            TOOLS,
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            out(None, "", &[("get_weather", "{\"city\": \"Paris\"}")]),
        ),
        (
            "two parallel calls",
            THINK_TOOLS,
            "<think>\nTwo lookups.\n</think>\n\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"y\": [1, {\"z\": \"}\"}]}}\n</tool_call>\n",
            out(
                Some("Two lookups."),
                "",
                &[("a", "{\"x\": 1}"), ("b", "{\"y\": [1, {\"z\": \"}\"}]}")],
            ),
        ),
        (
            "content then call",
            TOOLS,
            "Let me check.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
            out(None, "Let me check.\n", &[("f", "{}")]),
        ),
        (
            "text after calls",
            TOOLS,
            "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":\"<tool_call>\"}}</tool_call>\n\nand more",
            out(None, "and more", &[("f", "{\"a\":\"<tool_call>\"}")]),
        ),
        (
            "malformed call json stays content",
            TOOLS,
            "Hi <tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call> bye",
            out(
                None,
                "Hi <tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call> bye",
                &[],
            ),
        ),
        (
            "malformed call between good ones",
            TOOLS,
            "<tool_call>{\"name\": \"a\"}</tool_call>\n<tool_call>{\"nome\": \"b\"}</tool_call>\n<tool_call>{\"name\": \"c\", \"arguments\": null}</tool_call>",
            out(
                None,
                "<tool_call>{\"nome\": \"b\"}</tool_call>\n",
                &[("a", "{}"), ("c", "{}")],
            ),
        ),
        (
            "unclosed call that parses",
            TOOLS,
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"q\": 1}}\n",
            out(None, "", &[("f", "{\"q\": 1}")]),
        ),
        (
            "unclosed call that does not parse",
            TOOLS,
            "<tool_call>\n{\"name\": \"f\", \"argu",
            out(None, "<tool_call>\n{\"name\": \"f\", \"argu", &[]),
        ),
        (
            "tools off: calls are content",
            THINK,
            "<tool_call>{\"name\": \"a\"}</tool_call>",
            out(None, "<tool_call>{\"name\": \"a\"}</tool_call>", &[]),
        ),
        (
            "partial tags at the end are text",
            THINK_TOOLS,
            "a <tool_ca",
            out(None, "a <tool_ca", &[]),
        ),
        (
            "partial think at the start is text",
            THINK,
            "<thi",
            out(None, "<thi", &[]),
        ),
        (
            "unicode",
            THINK_TOOLS,
            "<think>日本語で考える 🙂</think>Ünïcödé → 答え<tool_call>{\"name\": \"翻訳\", \"arguments\": {\"text\": \"é🙂\\u00e9\"}}</tool_call>",
            out(
                Some("日本語で考える 🙂"),
                "Ünïcödé → 答え",
                &[("翻訳", "{\"text\": \"é🙂\\u00e9\"}")],
            ),
        ),
        (
            "empty output",
            FORCED,
            "",
            out(None, "", &[]),
        ),
    ]
}

/// Feeds `pieces`, checks the deltas' invariants, and accumulates them.
fn run(opts: ParserOptions, pieces: &[&str]) -> ParsedOutput {
    let mut p = OutputParser::new(opts);
    let mut deltas = Vec::new();
    for piece in pieces {
        deltas.extend(p.push(piece));
    }
    deltas.extend(p.finish());
    let mut result = ParsedOutput::default();
    let mut started = 0;
    for d in deltas {
        match &d {
            Delta::Reasoning(t) | Delta::Content(t) => assert!(!t.is_empty(), "empty delta"),
            Delta::ToolCallStart { index, .. } => {
                assert_eq!(*index, started, "calls start in order");
                started += 1;
            }
            Delta::ToolCallArguments { index, .. } => assert!(*index < started),
        }
        result.apply(d);
    }
    result
}

fn char_boundaries(s: &str) -> Vec<usize> {
    (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect()
}

#[test]
fn one_shot_results() {
    for (name, opts, text, want) in cases() {
        assert_eq!(parse_output(text, opts), want, "{name}");
        assert_eq!(run(opts, &[text]), want, "{name}");
    }
}

#[test]
fn every_split_gives_the_same_result() {
    for (name, opts, text, want) in cases() {
        let cuts = char_boundaries(text);
        // One cut anywhere.
        for &i in &cuts {
            assert_eq!(
                run(opts, &[&text[..i], &text[i..]]),
                want,
                "{name} cut at {i}"
            );
        }
        // Two cuts anywhere (a tag split in three).
        for (a, &i) in cuts.iter().enumerate() {
            for &j in &cuts[a..] {
                assert_eq!(
                    run(opts, &[&text[..i], &text[i..j], &text[j..]]),
                    want,
                    "{name} cut at {i} and {j}"
                );
            }
        }
        // One char at a time.
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(run(opts, &pieces), want, "{name} char by char");
    }
}

/// Deltas come as early as they are certain.
#[test]
fn streams_early() {
    let mut p = OutputParser::new(THINK_TOOLS);
    assert_eq!(p.push("<think>"), vec![]);
    assert_eq!(p.push("\nI "), vec![Delta::Reasoning("I".into())]);
    // The trailing space may be the end of the reasoning: held back.
    assert_eq!(p.push("think"), vec![Delta::Reasoning(" think".into())]);
    assert_eq!(p.push(" </th"), vec![]);
    assert_eq!(
        p.push("ink>\n\nHello <"),
        vec![Delta::Content("Hello ".into())]
    );
    assert_eq!(p.push("b>"), vec![Delta::Content("<b>".into())]);
    assert_eq!(
        p.push(" <tool_call>\n{\"name\": \"f\""),
        vec![Delta::Content(" ".into())]
    );
    assert_eq!(
        p.push(", \"arguments\": {}}\n</tool_call>"),
        vec![
            Delta::ToolCallStart {
                index: 0,
                name: "f".into()
            },
            Delta::ToolCallArguments {
                index: 0,
                fragment: "{}".into()
            }
        ]
    );
    assert_eq!(p.tool_calls(), 1);
    assert_eq!(p.push("\n"), vec![]);
    assert_eq!(p.finish(), vec![]);

    // Without tools nothing is held back in the content.
    let mut p = OutputParser::new(PLAIN);
    assert_eq!(p.push("a <tool_"), vec![Delta::Content("a <tool_".into())]);
    // Before the first non-space, `<think>` may still come.
    let mut p = OutputParser::new(THINK);
    assert_eq!(p.push("  <th"), vec![]);
    assert_eq!(p.push("e"), vec![Delta::Content("  <the".into())]);
}

proptest! {
    #[test]
    fn random_splits(case in 0usize..22, seed in proptest::collection::vec(0usize..1000, 0..12)) {
        let all = cases();
        let (name, opts, text, want) = &all[case % all.len()];
        let cuts = char_boundaries(text);
        let mut points: Vec<usize> = seed.iter().map(|s| cuts[s % cuts.len()]).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for p in points {
            pieces.push(&text[last..p]);
            last = p;
        }
        pieces.push(&text[last..]);
        prop_assert_eq!(&run(*opts, &pieces), want, "{}", name);
    }
}

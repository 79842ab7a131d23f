//! jinja2-as-configured-by-transformers behaviours that HF templates rely on.
//!
//! Each expected string is what Python jinja2 3.1 printed for the same
//! template and context, with transformers' settings (trim_blocks,
//! lstrip_blocks, loopcontrols, json.dumps-based `tojson`; see
//! `tests/data/gen_expected.py::compile_hf`).

use shohin_chat::{ChatTemplate, Message, RenderOptions};

fn render(source: &str) -> String {
    let msgs = [
        Message::new("user", "  Hello, World  "),
        Message::new("assistant", "a,b,,c"),
    ];
    let opts = RenderOptions {
        add_generation_prompt: true,
        enable_thinking: None,
        bos_token: "<s>".into(),
        eos_token: "</s>".into(),
        tools: None,
    };
    ChatTemplate::new(source)
        .unwrap_or_else(|e| panic!("compile {source:?}: {e}"))
        .render(&msgs, &opts)
        .unwrap_or_else(|e| panic!("render {source:?}: {e}"))
}

#[test]
fn tojson_is_python_json_dumps() {
    assert_eq!(
        render(r#"{{ {'b': 1, 'a': [1, 2.5, none, true, 'x"<&>\'é\n'], 'c': {}} | tojson }}"#),
        r#"{"b": 1, "a": [1, 2.5, null, true, "x\"<&>'é\n"], "c": {}}"#
    );
    assert_eq!(
        render("{{ {'b': 1, 'a': [1, {}], 'c': []} | tojson(indent=2) }}"),
        "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {}\n  ],\n  \"c\": []\n}"
    );
    assert_eq!(
        render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"),
        r#"{"a": 2, "b": 1}"#
    );
    assert_eq!(
        render(r"{{ 'é🙂\u0001' | tojson(ensure_ascii=true) }}"),
        r#""\u00e9\ud83d\ude42\u0001""#
    );
    assert_eq!(
        render("{{ [1, 2] | tojson(separators=(',', ':')) }}"),
        "[1,2]"
    );
}

#[test]
fn python_string_and_dict_methods() {
    assert_eq!(
        render(
            "{{ messages[0].content.strip() }}|{{ messages[0].content.lstrip() }}|\
             {{ messages[0].content.rstrip() }}|{{ messages[0].content.startswith('  He') }}|\
             {{ messages[0].content.endswith('x') }}"
        ),
        "Hello, World|Hello, World  |  Hello, World|True|False"
    );
    assert_eq!(
        render(
            "{{ messages[1].content.split(',') }}|{{ messages[0].content.split() }}|\
             {{ messages[0].content.upper() }}|{{ 'a-b'.replace('-', '+') }}"
        ),
        "['a', 'b', '', 'c']|['Hello,', 'World']|  HELLO, WORLD  |a+b"
    );
    assert_eq!(
        render("{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}"),
        "role=user;content=  Hello, World  ;"
    );
    assert_eq!(
        render(
            "{{ 'x' if messages[0].get('missing') is none else 'y' }} {{ messages[0].get('role') }} \
             {{ messages[0]['missing'] is defined }}"
        ),
        "x user False"
    );
}

#[test]
fn loop_controls_and_namespace() {
    assert_eq!(
        render(
            "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.role }}{% break %}{% endfor %}"
        ),
        "assistant"
    );
    assert_eq!(
        render("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"),
        "2"
    );
    assert_eq!(
        render("{{ messages[::-1] | map(attribute='role') | join(',') }} {{ messages | length }} {{ (messages | last).role }}"),
        "assistant,user 2 assistant"
    );
}

#[test]
fn prints_like_python() {
    assert_eq!(
        render("{{ none }} {{ true }} {{ false }} {{ 1.0 }} {{ 3 }}"),
        "None True False 1.0 3"
    );
    assert_eq!(
        render(
            r#"{{ [1, 'a', none, 2.5, {'k': "it's", 'q': 'say "hi"'}] }}|{{ 1e16 }}|{{ 0.00001 }}|{{ {'a': true} }}"#
        ),
        r#"[1, 'a', None, 2.5, {'k': "it's", 'q': 'say "hi"'}]|1e+16|1e-05|{'a': True}"#
    );
}

#[test]
fn context_variables_like_apply_chat_template() {
    assert_eq!(
        render(
            "{{ tools is none }} {{ tools is defined }} {{ documents is none }} \
             {{ enable_thinking is defined }} [{{ bos_token }}][{{ eos_token }}] {{ add_generation_prompt }}"
        ),
        "True True True False [<s>][</s>] True"
    );
}

/// jinja2's `iterable` is `iter(x)` succeeding; templates guard tools with
/// `tools is iterable and tools | length > 0` while `tools` is `None`.
#[test]
fn iterable_test_like_python() {
    assert_eq!(
        render(
            "{{ none is iterable }} {{ nope is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} \
             {{ messages is iterable }} {{ tools is iterable and tools | length > 0 }}"
        ),
        "False True True False True False"
    );
}

#[test]
fn trim_and_lstrip_blocks() {
    assert_eq!(
        render(
            "<ul>\n  {% for m in messages %}\n    <li>{{ m.role }}</li>\n  {% endfor %}\n</ul>\n"
        ),
        // keep_trailing_newline=False drops the final newline.
        "<ul>\n    <li>user</li>\n    <li>assistant</li>\n</ul>"
    );
    assert_eq!(
        render("{%- macro f(x) -%}[{{ x }}]{%- endmacro -%}{{ f(messages[0].role) }}\n"),
        "[user]"
    );
}

/// transformers' AssistantTracker renders `{% generation %}` bodies unchanged
/// (`_render_assistant` returns `caller()` when not tracking).
#[test]
fn generation_blocks_render_their_body() {
    assert_eq!(
        render(
            "{%- for m in messages -%}\n  {%- generation -%}\n  {{ m.role }}\n  {%- endgeneration -%}\n{%- endfor -%}"
        ),
        "userassistant"
    );
}

#[test]
fn strftime_now_gives_a_date() {
    let out = render("{{ strftime_now('%Y-%m-%d') }}");
    let parts: Vec<&str> = out.split('-').collect();
    assert_eq!(parts.len(), 3, "{out}");
    let year: u32 = parts[0].parse().unwrap();
    assert!((2024..3000).contains(&year), "{out}");
    assert_eq!(parts[1].len(), 2);
    assert_eq!(parts[2].len(), 2);
}

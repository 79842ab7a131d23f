//! Special tokens, end-of-generation ids, and prompt/answer ids recorded from
//! llama.cpp runs of real models (`shared/fixtures/golden/*.json`).

mod common;

use common::{fixtures, golden, ids, qwen2_fixture, real_model, vocab_from_gguf};
use shohin_tokenizer::Tokenizer;

const IM_START: u32 = 151644;
const IM_END: u32 = 151645;
const ENDOFTEXT: u32 = 151643;

#[test]
fn chat_specials_are_parsed_only_with_parse_special() {
    for tok in [qwen2_fixture(), real_model()] {
        let text = "<|im_start|>user\nhi<|im_end|>";
        let with = tok.encode(text, false, true);
        assert_eq!(with.first(), Some(&IM_START));
        assert_eq!(with.last(), Some(&IM_END));
        // "user" "\n" "hi" in between, as plain BPE
        assert_eq!(
            &with[1..with.len() - 1],
            &tok.encode("user\nhi", false, false)[..]
        );

        let without = tok.encode(text, false, false);
        assert!(
            !without.contains(&IM_START) && !without.contains(&IM_END),
            "{without:?}"
        );
        assert!(without.len() > with.len());
        // "<|" is plain text then: the text round-trips through the ordinary tokens
        assert_eq!(tok.decode(&without).unwrap(), text);
        assert_eq!(tok.decode(&with).unwrap(), text);
        // add_special adds nothing for Qwen (add_bos = add_eos = false)
        assert_eq!(tok.encode(text, true, true), with);
    }
}

#[test]
fn longest_special_token_wins_and_adjacent_specials_split() {
    let tok = real_model();
    let text = "<|im_start|><|im_end|><|endoftext|>x<|im_start|>";
    assert_eq!(
        tok.encode(text, false, true),
        [IM_START, IM_END, ENDOFTEXT, 87, IM_START]
    );
    // a special token inside a word still splits it
    let ids = tok.encode("ab<|im_end|>cd", false, true);
    assert_eq!(ids[ids.len() - 2..].len(), 2);
    assert!(ids.contains(&IM_END));
    assert_eq!(tok.decode(&ids).unwrap(), "ab<|im_end|>cd");
}

#[test]
fn user_defined_tokens_are_matched_even_without_parse_special() {
    // llama.cpp tokenizer_st_partition skips only CONTROL/UNKNOWN tokens when
    // parse_special is false; USER_DEFINED ones (type 4) are always matched.
    let tok = real_model();
    let id = tok.token_to_id("<tool_call>").unwrap();
    assert_eq!(id, 151657);
    assert!(!tok.is_control(id));
    assert_eq!(tok.encode("<tool_call>", false, false), [id]);
    assert_eq!(tok.encode("x<tool_call>", false, false), [87, id]);
    // the qwen2 test vocabulary marks its [PAD…] tokens USER_DEFINED
    let fx = qwen2_fixture();
    assert_eq!(fx.encode("[PAD151646]", false, false), [151646]);
}

#[test]
fn haiku_prompt_matches_llama_cpp() {
    let g = golden("qwen2.5-coder-0.5b_haiku.json");
    let prompt = g["prompt"].as_str().unwrap();
    let expected = ids(&g["prompt_ids"]);
    assert_eq!(
        expected,
        [
            151644, 872, 198, 7985, 264, 6386, 38242, 911, 41674, 13, 151645, 198, 151644, 77091,
            198
        ]
    );
    assert_eq!(real_model().encode(prompt, false, true), expected);
    // same BPE vocabulary in llama.cpp's test file
    assert_eq!(qwen2_fixture().encode(prompt, false, true), expected);
}

#[test]
fn quicksort_prompt_matches_llama_cpp() {
    let g = golden("qwen2.5-coder-0.5b_quicksort.json");
    let prompt = g["prompt"].as_str().unwrap();
    assert_eq!(prompt, "def quicksort(xs):\n");
    let expected = ids(&g["prompt_ids"]);
    assert_eq!(expected.len(), 5);
    assert_eq!(real_model().encode(prompt, false, true), expected);
}

#[test]
fn greedy_texts_decode_like_llama_cpp() {
    // llama.cpp renders the generated ids without special tokens
    for name in [
        "qwen2.5-coder-0.5b_haiku.json",
        "qwen2.5-coder-0.5b_quicksort.json",
    ] {
        let g = golden(name);
        let text = real_model()
            .decode_with(&ids(&g["greedy_ids"]), false)
            .unwrap();
        assert_eq!(text, g["greedy_text"].as_str().unwrap(), "{name}");
    }
    // with specials rendered, the haiku answer shows its <|im_end|> and <|endoftext|>
    let g = golden("qwen2.5-coder-0.5b_haiku.json");
    let text = real_model().decode(&ids(&g["greedy_ids"])).unwrap();
    assert!(
        text.contains("sway.<|im_end|>\n<|endoftext|>I am"),
        "{text:?}"
    );
}

#[test]
fn tiny_models_prompt_and_answer_match_llama_cpp() {
    for (model, gold) in [
        ("tiny-q1_0.gguf", "tiny-q1_0_once.json"),
        ("tiny-q2_0.gguf", "tiny-q2_0_once.json"),
    ] {
        let tok = Tokenizer::new(vocab_from_gguf(&fixtures().join(model))).unwrap();
        let g = golden(gold);
        assert_eq!(
            tok.encode(g["prompt"].as_str().unwrap(), false, true),
            ids(&g["prompt_ids"]),
            "{model}"
        );
        assert_eq!(
            tok.decode_with(&ids(&g["greedy_ids"]), false).unwrap(),
            g["greedy_text"].as_str().unwrap(),
            "{model}"
        );
    }
}

#[test]
fn special_ids_and_end_of_generation_like_llama_cpp() {
    let tok = real_model();
    assert_eq!(tok.n_vocab(), 151936);
    assert_eq!(tok.bos(), Some(ENDOFTEXT));
    assert_eq!(tok.eos(), Some(IM_END));
    assert_eq!(tok.pad(), Some(ENDOFTEXT));
    // no eot key in the file: llama.cpp picks <|im_end|> by its text
    assert_eq!(tok.eot(), Some(IM_END));
    // llama_vocab_is_eog of the vendored llama.cpp for this file: "</s>" (its
    // EOG text list has it, for paddleocr), <|endoftext|>, <|im_end|>,
    // <|fim_pad|>, <|repo_name|>, <|file_sep|>
    assert_eq!(
        tok.eog_ids(),
        [128247, 151643, 151645, 151662, 151663, 151664]
    );
    // ... which also makes "</s>" a CONTROL token, parsed only with parse_special
    assert!(tok.is_control(128247));
    assert_eq!(tok.encode("hi</s>", false, true), [6023, 128247]);
    assert!(!tok.encode("hi</s>", false, false).contains(&128247));
    assert!(tok.is_eog(IM_END) && tok.is_eog(ENDOFTEXT));
    assert!(!tok.is_eog(IM_START) && !tok.is_eog(198));
    assert!(tok.is_control(IM_START));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(IM_START));
    assert_eq!(tok.token_to_id("Ċ"), Some(198));
    assert_eq!(tok.token_to_id("no such token"), None);
    assert_eq!(tok.token_text(198), Some("Ċ"));

    // pieces: control tokens as text, byte-level tokens decoded, UNUSED tokens empty
    assert_eq!(tok.token_bytes(IM_START), Some(&b"<|im_start|>"[..]));
    assert_eq!(tok.token_bytes(198), Some(&b"\n"[..]));
    assert_eq!(tok.token_bytes(151700), Some(&b""[..])); // [PAD151700], type UNUSED
    assert_eq!(tok.token_bytes(151936), None);
    assert_eq!(tok.piece(IM_START, false).unwrap(), b"");
    assert!(tok.decode(&[151936]).is_err());
}

//! Validation errors and vocabulary-level behaviour on small synthetic vocabularies.

use shohin_tokenizer::{token_type, PreTokenizer, Tokenizer, TokenizerError, VocabData};

/// GPT-2 byte-level spelling of one byte (written independently of the crate).
fn byte_char(b: u8) -> char {
    let keeps = |x: u8| {
        (b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || (0xAE..=0xFF).contains(&x)
    };
    if keeps(b) {
        char::from(b)
    } else {
        char::from_u32(256 + (0..b).filter(|&x| !keeps(x)).count() as u32).unwrap()
    }
}

/// 256 byte tokens (id = byte), then "he" (256), "hel" (257), "Ġw" (258),
/// "<|im_end|>" (259), "<|im_start|>" (260), "<s>" (261); merges "h e",
/// "he l", "Ġ w".
fn small() -> VocabData {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    tokens.extend(["he", "hel", "Ġw", "<|im_end|>", "<|im_start|>", "<s>"].map(String::from));
    let mut token_types = vec![token_type::NORMAL; 259];
    token_types.extend([
        token_type::CONTROL,
        token_type::CONTROL,
        token_type::CONTROL,
    ]);
    VocabData {
        tokens,
        token_types,
        merges: ["h e", "he l", "Ġ w"].map(String::from).to_vec(),
        pre: "qwen2".into(),
        bos: Some(261),
        eos: Some(259),
        ..Default::default()
    }
}

fn err(v: VocabData) -> TokenizerError {
    Tokenizer::new(v).expect_err("vocabulary must be rejected")
}

#[test]
fn tokenizer_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<shohin_tokenizer::StreamDecoder>();
}

#[test]
fn small_vocab_works() {
    let t = Tokenizer::new(small()).unwrap();
    assert_eq!(t.n_vocab(), 262);
    assert_eq!(
        t.encode("hello world", false, false),
        [257, b'l' as u32, b'o' as u32, 258, 111, 114, 108, 100]
    );
    assert_eq!(
        t.decode(&t.encode("hello world", false, false)).unwrap(),
        "hello world"
    );
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Qwen2));
    // <|im_end|> is EOG (by text and as eos); eot auto-detected from its text
    assert_eq!(t.eot(), Some(259));
    assert!(t.is_eog(259));
    assert!(!t.is_eog(260));
}

#[test]
fn empty_vocab() {
    assert_eq!(
        err(VocabData {
            pre: "qwen2".into(),
            ..Default::default()
        }),
        TokenizerError::EmptyVocab
    );
}

#[test]
fn merge_naming_unknown_token() {
    let mut v = small();
    v.merges.push("x qq".into());
    let e = err(v);
    assert_eq!(
        e,
        TokenizerError::MergeUnknownToken {
            index: 3,
            line: "x qq".into(),
            token: "qq".into()
        }
    );
    let msg = e.to_string();
    assert!(msg.contains("#3") && msg.contains("\"qq\""), "{msg}");

    let mut v = small();
    v.merges.insert(0, "zz a".into());
    assert!(
        matches!(err(v), TokenizerError::MergeUnknownToken { index: 0, token, .. } if token == "zz")
    );
}

#[test]
fn merge_producing_unknown_token() {
    let mut v = small();
    v.merges.push("a b".into()); // "ab" is not a token
    assert_eq!(
        err(v),
        TokenizerError::MergeResultUnknown {
            index: 3,
            line: "a b".into(),
            result: "ab".into()
        }
    );
}

#[test]
fn malformed_merge_lines() {
    for bad in ["ab", "", " ", "a ", "a b c"] {
        let mut v = small();
        v.merges.push(bad.into());
        let e = err(v);
        assert_eq!(
            e,
            TokenizerError::MalformedMerge {
                index: 3,
                line: bad.into()
            },
            "{bad:?}"
        );
        assert!(e.to_string().contains("#3"), "{e}");
    }
}

#[test]
fn special_ids_out_of_range() {
    let n = small().tokens.len() as u32;
    type Setter = fn(&mut VocabData, Option<u32>);
    let cases: [(&str, Setter); 4] = [
        ("bos", |v, id| v.bos = id),
        ("eos", |v, id| v.eos = id),
        ("eot", |v, id| v.eot = id),
        ("pad", |v, id| v.pad = id),
    ];
    for (which, set) in cases {
        let mut v = small();
        set(&mut v, Some(n));
        let e = err(v);
        assert_eq!(
            e,
            TokenizerError::SpecialIdOutOfRange {
                which,
                id: n,
                n_vocab: n as usize
            }
        );
        assert!(
            e.to_string().contains(which) && e.to_string().contains(&n.to_string()),
            "{e}"
        );
        // the last valid id is fine
        let mut v = small();
        set(&mut v, Some(n - 1));
        Tokenizer::new(v).unwrap();
    }
}

#[test]
fn unknown_pre_tokenizer() {
    for pre in ["starcoder", "tekken", "default", "", "QWEN2", "LLAMA3"] {
        let mut v = small();
        v.pre = pre.into();
        let e = err(v);
        assert_eq!(e, TokenizerError::UnknownPreTokenizer(pre.into()));
        assert!(e.to_string().contains(&format!("{pre:?}")), "{e}");
    }
    let mut v = small();
    v.pre = "deepseek-r1-qwen".into();
    assert_eq!(
        Tokenizer::new(v).unwrap().pre_tokenizer(),
        Some(PreTokenizer::Qwen2)
    );
}

#[test]
fn duplicate_tokens_are_rejected_like_llama_cpp() {
    // llama.cpp asserts id_to_token.size() == token_to_id.size()
    let mut v = small();
    v.tokens.push("he".into());
    v.token_types.push(token_type::NORMAL);
    assert_eq!(
        err(v),
        TokenizerError::DuplicateToken {
            text: "he".into(),
            first: 256,
            second: 262
        }
    );
}

#[test]
fn other_validation_errors() {
    let mut v = small();
    v.token_types.truncate(10);
    assert_eq!(
        err(v),
        TokenizerError::TokenTypesTooShort {
            n_types: 10,
            n_tokens: 262
        }
    );

    let mut v = small();
    v.bos = None;
    v.add_bos = true;
    assert_eq!(
        err(v),
        TokenizerError::MissingSpecialForAdd { which: "bos" }
    );

    let mut v = small();
    v.tokens.push("<0xZZ>".into());
    v.token_types.push(token_type::BYTE);
    assert_eq!(
        err(v),
        TokenizerError::BadByteToken {
            id: 262,
            text: "<0xZZ>".into()
        }
    );
}

#[test]
fn decode_rejects_ids_outside_the_vocab() {
    let t = Tokenizer::new(small()).unwrap();
    let e = t.decode(&[104, 262]).unwrap_err();
    assert_eq!(
        e,
        TokenizerError::IdOutOfVocab {
            id: 262,
            n_vocab: 262
        }
    );
    assert!(e.to_string().contains("262"));
    assert!(t.decode(&[u32::MAX]).is_err());
    assert_eq!(t.token_bytes(262), None);
}

#[test]
fn add_special_adds_bos_and_eos_when_asked() {
    let mut v = small();
    v.add_bos = true;
    v.add_eos = true;
    let t = Tokenizer::new(v).unwrap();
    assert_eq!(t.encode("he", true, false), [261, 256, 259]);
    assert_eq!(t.encode("he", false, false), [256]);
    assert_eq!(t.encode("", true, false), [261, 259]);
    assert_eq!(t.encode("", false, false), Vec::<u32>::new());
}

#[test]
fn types_absent_means_normal_but_eog_texts_become_control() {
    let mut v = small();
    v.token_types.clear();
    let t = Tokenizer::new(v).unwrap();
    // "<|im_end|>" is forced to CONTROL by its text (llama.cpp overrides the type)
    assert!(t.is_control(259));
    assert_eq!(t.encode("a<|im_end|>", false, true), [97, 259]);
    // "<|im_start|>" stays NORMAL: never parsed as special, and its piece is
    // its byte-level decoding (identical here: all characters are printable ASCII)
    assert!(!t.is_control(260));
    assert!(!t.encode("<|im_start|>", false, true).contains(&260));
}

#[test]
fn empty_tokens_are_renamed_and_unused_tokens_render_empty() {
    let mut v = small();
    v.tokens.push(String::new());
    v.token_types.push(token_type::UNUSED);
    let t = Tokenizer::new(v).unwrap();
    assert_eq!(t.token_text(262), Some("[EMPTY_262]"));
    assert_eq!(t.token_bytes(262), Some(&b""[..]));
}

#[test]
fn bytes_without_a_token_are_dropped_like_llama_cpp() {
    let mut v = small();
    // remove the token for 'z' by renaming it (ids stay dense)
    v.tokens[b'z' as usize] = "[no z]".into();
    let t = Tokenizer::new(v).unwrap();
    assert_eq!(t.encode("aza", false, false), [97, 97]);
}

#[test]
fn gpt2_pre_tokenizer_and_clean_spaces() {
    let mut v = small();
    v.pre = "gpt-2".into();
    let t = Tokenizer::new(v).unwrap();
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Gpt2));
    assert_eq!(t.encode("hel w", false, false), [257, 258]);
    // llama.cpp's detokenizer cleans " ," and " 's" for gpt-2 (not for qwen2)
    let ids = t.encode("a , b 's", false, false);
    assert_eq!(t.decode(&ids).unwrap(), "a, b's");
    let q = Tokenizer::new(small()).unwrap();
    assert_eq!(
        q.decode(&q.encode("a , b 's", false, false)).unwrap(),
        "a , b 's"
    );
}

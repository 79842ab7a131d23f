//! SentencePiece (`tokenizer.ggml.model = "llama"`) and `GgufVocab` loading on
//! small synthetic vocabularies: llama.cpp's defaults, merge order by score,
//! byte fallback, space prefix, and the errors for unsupported tokenizers.

use shohin_tokenizer::{token_type, GgufVocab, Tokenizer, TokenizerError, TokenizerModel};

const UNK: u32 = 0;
const BOS: u32 = 1;
const EOS: u32 = 2;
/// Id of the byte-fallback token `<0xXX>`.
fn byte(b: u8) -> u32 {
    3 + u32::from(b)
}

/// `<unk> <s> </s>`, the 256 byte tokens, then pieces with scores.
fn spm(pieces: &[(&str, f32)]) -> GgufVocab {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    let mut token_types = vec![
        token_type::UNKNOWN,
        token_type::CONTROL,
        token_type::CONTROL,
    ];
    let mut scores = vec![0.0; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        token_types.push(token_type::BYTE);
        scores.push(0.0);
    }
    for (t, s) in pieces {
        tokens.push((*t).to_string());
        token_types.push(token_type::NORMAL);
        scores.push(*s);
    }
    GgufVocab {
        model: "llama".into(),
        pre: Some("default".into()), // ignored for SPM, as in llama.cpp
        tokens,
        scores,
        token_types,
        ..Default::default()
    }
}

const P0: u32 = 259; // id of the first piece

fn abc() -> Tokenizer {
    Tokenizer::from_gguf_vocab(spm(&[
        ("▁", -1.0),   // 259
        ("a", -2.0),   // 260
        ("b", -2.0),   // 261
        ("▁a", -5.0),  // 262
        ("ab", -3.0),  // 263
        ("ba", -3.0),  // 264
        ("▁ab", -4.0), // 265
    ]))
    .unwrap()
}

#[test]
fn llama_cpp_defaults_for_spm() {
    let t = abc();
    assert_eq!(t.model(), TokenizerModel::Spm);
    assert_eq!(
        (t.unk(), t.bos(), t.eos()),
        (Some(UNK), Some(BOS), Some(EOS))
    );
    assert!(t.add_bos() && !t.add_eos() && t.add_space_prefix());
    assert_eq!(t.pre_tokenizer(), None);
    assert_eq!(t.encode("", true, false), [BOS]);
    assert_eq!(t.encode("", false, false), Vec::<u32>::new());
    // explicit keys win over the defaults
    let mut v = spm(&[("▁", -1.0)]);
    v.add_bos = Some(false);
    v.add_eos = Some(true);
    v.bos = Some(EOS);
    let t = Tokenizer::from_gguf_vocab(v).unwrap();
    assert!(!t.add_bos() && t.add_eos());
    assert_eq!(t.bos(), Some(EOS));
}

#[test]
fn pairs_merge_by_score_then_leftmost() {
    let t = abc();
    // "▁aba": pairs ▁a (-5), ab (-3), ba (-3): the tie goes to the leftmost,
    // "ab"; then ▁+ab = ▁ab (-4) beats nothing else; "a" stays
    assert_eq!(t.encode("aba", false, false), [P0 + 6, P0 + 1]);
    // "▁bab": ba and ab tie, leftmost "ba" wins; ▁ b a b → ▁ ba b
    assert_eq!(t.encode("bab", false, false), [P0, P0 + 5, P0 + 2]);
    // only tokens ever form: "▁ab" needs "ab" first even though "▁a" exists
    assert_eq!(
        t.decode(&t.encode("aba bab", false, false)).unwrap(),
        "aba bab"
    );
}

#[test]
fn unknown_characters_fall_back_to_bytes() {
    let t = abc();
    let ids = t.encode("aé", false, false);
    assert_eq!(ids, [P0 + 3, byte(0xC3), byte(0xA9)]);
    assert_eq!(t.decode(&ids).unwrap(), "aé");
    // a space run: each escaped space is "▁"
    assert_eq!(t.encode("a  b", false, false), [P0 + 3, P0, P0, P0 + 2]);
    // without a byte token the unknown token stands in (llama.cpp throws)
    let mut v = spm(&[("▁", -1.0), ("a", -1.0)]);
    v.tokens[byte(b'z') as usize] = "[no z]".into();
    v.token_types[byte(b'z') as usize] = token_type::UNUSED;
    let t = Tokenizer::from_gguf_vocab(v).unwrap();
    assert_eq!(t.encode("az", false, false), [P0, P0 + 1, UNK]);
}

#[test]
fn space_prefix_follows_add_space_prefix_and_special_tokens() {
    let t = abc();
    // prefix at the start and after every special token
    assert_eq!(t.encode("ab</s>ab", false, true), [P0 + 6, EOS, P0 + 6]);
    assert_eq!(t.encode("ab</s>", true, true), [BOS, P0 + 6, EOS]);
    let mut v = spm(&[("▁", -1.0), ("a", -2.0), ("b", -2.0), ("ab", -3.0)]);
    v.add_space_prefix = Some(false);
    let t = Tokenizer::from_gguf_vocab(v).unwrap();
    assert!(!t.add_space_prefix());
    assert_eq!(t.encode("ab", false, false), [P0 + 3]);
    assert_eq!(t.encode(" ab", false, false), [P0, P0 + 3]);
    // and decode keeps a leading space then
    assert_eq!(t.decode(&[P0, P0 + 3]).unwrap(), " ab");
}

#[test]
fn unknown_and_control_tokens_render_only_when_special() {
    let t = abc();
    assert_eq!(t.piece(UNK, true).unwrap(), b"<unk>");
    assert_eq!(t.piece(UNK, false).unwrap(), b"");
    assert_eq!(t.decode_with(&[BOS, P0 + 6], false).unwrap(), " ab");
    assert_eq!(t.decode(&[P0 + 6, EOS]).unwrap(), "ab</s>");
    // "<unk>" in text is parsed only with parse_special
    assert_eq!(t.encode("<unk>", false, true), [UNK]);
    assert_ne!(t.encode("<unk>", false, false), [UNK]);
}

#[test]
fn unsupported_tokenizer_models_are_errors_naming_the_key() {
    for model in ["t5", "bert", "rwkv", "plamo2", "none", ""] {
        let mut v = spm(&[]);
        v.model = model.into();
        let e = Tokenizer::from_gguf_vocab(v).unwrap_err();
        assert_eq!(e, TokenizerError::UnsupportedModel(model.into()));
        let msg = e.to_string();
        assert!(
            msg.contains("tokenizer.ggml.model") && msg.contains(&format!("{model:?}")),
            "{msg}"
        );
    }
}

#[test]
fn bpe_pre_tokenizer_is_required_and_named_in_errors() {
    // gpt2 without tokenizer.ggml.pre reads as "default", which llama.cpp
    // splits with a regex this crate does not implement
    let v = GgufVocab {
        model: "gpt2".into(),
        tokens: vec!["a".into()],
        ..Default::default()
    };
    let e = Tokenizer::from_gguf_vocab(v.clone()).unwrap_err();
    assert_eq!(e, TokenizerError::UnknownPreTokenizer("default".into()));
    assert!(e.to_string().contains("tokenizer.ggml.pre"), "{e}");
    for pre in ["starcoder", "tekken", "deepseek-llm", "gpt-4o"] {
        let e = Tokenizer::from_gguf_vocab(GgufVocab {
            pre: Some(pre.into()),
            ..v.clone()
        })
        .unwrap_err();
        assert_eq!(e, TokenizerError::UnknownPreTokenizer(pre.into()));
    }
}

#[test]
fn llama3_bpe_defaults_to_bos() {
    // llama-vocab.cpp sets add_bos for LLAMA3 when the key is absent
    let v = GgufVocab {
        model: "gpt2".into(),
        pre: Some("llama-bpe".into()),
        tokens: vec!["a".into(), "<|begin_of_text|>".into()],
        token_types: vec![token_type::NORMAL, token_type::CONTROL],
        bos: Some(1),
        ..Default::default()
    };
    let t = Tokenizer::from_gguf_vocab(v.clone()).unwrap();
    assert!(t.add_bos() && !t.add_space_prefix());
    assert_eq!(t.encode("aa", true, false), [1, 0, 0]);
    let t = Tokenizer::from_gguf_vocab(GgufVocab {
        add_bos: Some(false),
        ..v.clone()
    })
    .unwrap();
    assert_eq!(t.encode("aa", true, false), [0, 0]);
    // add_bos without a bos id is rejected
    let e = Tokenizer::from_gguf_vocab(GgufVocab { bos: None, ..v }).unwrap_err();
    assert_eq!(e, TokenizerError::MissingSpecialForAdd { which: "bos" });
}

#[test]
fn scores_shorter_than_tokens_are_rejected() {
    let mut v = spm(&[("▁", -1.0)]);
    v.scores.pop();
    let e = Tokenizer::from_gguf_vocab(v).unwrap_err();
    assert_eq!(
        e,
        TokenizerError::ScoresTooShort {
            n_scores: 259,
            n_tokens: 260
        }
    );
}

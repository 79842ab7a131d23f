//! llama.cpp's own tokenizer test vectors for the Llama vocabularies
//! (`models/ggml-vocab-llama-{spm,bpe}.gguf.inp/.out`, fetched by
//! scripts/fetch-vocabs.sh), checked the way tests/test-tokenizer-0.cpp does:
//! `common_tokenize(ctx, text, add_special = false, parse_special = false)`
//! must give exactly the recorded ids. Decoding the ids must give the text
//! back as llama.cpp's `llama_detokenize` would.

mod common;

use common::{llama_bpe, llama_spm, llama_vocab_dir, read_vectors};
use shohin_tokenizer::{PreTokenizer, StreamDecoder, Tokenizer, TokenizerModel};

fn vectors(name: &str) -> Vec<(String, Vec<u32>)> {
    let dir = llama_vocab_dir();
    read_vectors(
        &dir.join(format!("{name}.inp")),
        &dir.join(format!("{name}.out")),
    )
}

/// Encode every vector like test-tokenizer-0.cpp; returns the mismatches.
fn encode_failures(tok: &Tokenizer, vectors: &[(String, Vec<u32>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (text, expected) in vectors {
        let got = tok.encode(text, false, false);
        if &got != expected {
            failures.push(format!(
                "{text:?}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    failures
}

/// Stream-decode `ids` from the start of a sequence.
fn stream(tok: &Tokenizer, ids: &[u32]) -> String {
    let mut d = StreamDecoder::sequence(true);
    let mut s = String::new();
    for &id in ids {
        s.push_str(&d.push(tok, id).unwrap());
    }
    s.push_str(&d.flush());
    s
}

#[test]
fn all_llama_spm_vectors_match() {
    let tok = llama_spm();
    let v = vectors("ggml-vocab-llama-spm.gguf");
    assert_eq!(v.len(), 46);
    let failures = encode_failures(tok, &v);
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        v.len(),
        failures.join("\n")
    );
}

#[test]
fn all_llama_bpe_vectors_match() {
    let tok = llama_bpe();
    let v = vectors("ggml-vocab-llama-bpe.gguf");
    assert_eq!(v.len(), 46);
    let failures = encode_failures(tok, &v);
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        v.len(),
        failures.join("\n")
    );
}

/// test-tokenizer-0.cpp itself checks ids only; here the expected ids must
/// also decode back to the input. SentencePiece is lossless (the space
/// prefix is stripped from the first token, byte tokens restore the rest).
#[test]
fn llama_spm_vectors_decode_to_their_text() {
    let tok = llama_spm();
    for (text, ids) in vectors("ggml-vocab-llama-spm.gguf") {
        assert_eq!(tok.decode(&ids).unwrap(), text, "decode of {ids:?}");
        assert_eq!(stream(tok, &ids), text, "streamed decode of {ids:?}");
    }
}

/// llama3 keeps llama.cpp's BPE default `clean_spaces = true`, whose first
/// pass drops a space before `?!.,`; in these vectors that only turns
/// "😁 ?" into "😁?" (two vectors). Everything else decodes to the input.
/// The streaming decoder does not clean spaces, so it always gives the input.
#[test]
fn llama_bpe_vectors_decode_like_llama_detokenize() {
    let tok = llama_bpe();
    let mut n_cleaned = 0;
    for (text, ids) in vectors("ggml-vocab-llama-bpe.gguf") {
        let expected = if text.contains("😁 ?") {
            n_cleaned += 1;
            text.replace("😁 ?", "😁?")
        } else {
            text.clone()
        };
        assert_eq!(tok.decode(&ids).unwrap(), expected, "decode of {text:?}");
        assert_eq!(stream(tok, &ids), text, "streamed decode of {text:?}");
    }
    assert_eq!(n_cleaned, 2);
}

#[test]
fn vectors_cover_the_tricky_cases() {
    // guard against a silently truncated fixture: these inputs must be present
    for name in ["ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-bpe.gguf"] {
        let v = vectors(name);
        let has = |s: &str| v.iter().any(|(t, _)| t == s);
        for s in [
            "",
            " ",
            "\t",
            "\n\n\n",
            "   Hello",
            "333333333",
            "Äpfel",
            "Cửa Việt",
        ] {
            assert!(has(s), "{name} lacks {s:?}");
        }
        assert!(v
            .iter()
            .any(|(t, ids)| t.contains("We'Ve a'lL") && ids.len() > 100));
    }
}

#[test]
fn llama_spm_metadata_and_defaults() {
    let tok = llama_spm();
    assert_eq!(tok.model(), TokenizerModel::Spm);
    assert_eq!(tok.pre_tokenizer(), None);
    assert_eq!(tok.n_vocab(), 32000);
    assert_eq!(
        (tok.bos(), tok.eos(), tok.unk()),
        (Some(1), Some(2), Some(0))
    );
    assert!(tok.add_bos() && !tok.add_eos() && tok.add_space_prefix());
    assert!(tok.is_eog(2) && !tok.is_eog(1));
    // the 256 byte-fallback tokens <0x00>..<0xFF> follow <unk> <s> </s>
    for b in 0..=255u32 {
        assert_eq!(tok.token_bytes(3 + b).unwrap(), [b as u8]);
    }
    assert_eq!(tok.token_bytes(1).unwrap(), b"<s>");
    assert_eq!(tok.piece(1, false).unwrap(), b"");
}

#[test]
fn llama_spm_special_tokens_and_space_prefix() {
    let tok = llama_spm();
    let hello = tok.encode("Hello", false, false);
    assert_eq!(hello, [15043]); // "▁Hello"
                                // add_special: BOS first (llama.cpp add_bos default for SPM)
    assert_eq!(tok.encode("Hello", true, false), [1, 15043]);
    assert_eq!(tok.encode("", true, false), [1]);
    // a special token is matched only with parse_special; the text after it
    // gets the space prefix again, as at the start
    assert_eq!(tok.encode("</s>Hello", false, true), [2, 15043]);
    assert_eq!(tok.encode("Hello</s>Hello", false, true), [15043, 2, 15043]);
    let plain = tok.encode("</s>Hello", false, false);
    assert!(!plain.contains(&2), "{plain:?}");
    // llama_detokenize strips the prefix space of the first token only;
    // after a rendered BOS the space stays, and a skipped BOS uses up the
    // first-token chance too
    assert_eq!(tok.decode(&[15043, 15043]).unwrap(), "Hello Hello");
    assert_eq!(tok.decode(&[1, 15043]).unwrap(), "<s> Hello");
    assert_eq!(tok.decode_with(&[1, 15043], false).unwrap(), " Hello");
    // per-token streaming (generation) keeps the space; a sequence decoder
    // drops it like decode
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(tok, 15043).unwrap(), " Hello");
    let mut d = StreamDecoder::sequence(true);
    assert_eq!(d.push(tok, 15043).unwrap(), "Hello");
    assert_eq!(d.push(tok, 15043).unwrap(), " Hello");
}

#[test]
fn llama_spm_byte_fallback_streams_whole_characters() {
    let tok = llama_spm();
    // characters missing from the vocabulary are spelled as UTF-8 byte tokens
    let text = "𝄞 ꙮ 🫠";
    let ids = tok.encode(text, false, false);
    let n_bytes = ids.iter().filter(|&&id| (3..259).contains(&id)).count();
    assert!(n_bytes >= 8, "{ids:?}");
    let mut d = StreamDecoder::sequence(true);
    let mut out = String::new();
    for &id in &ids {
        let chunk = d.push(tok, id).unwrap();
        assert!(!chunk.contains('\u{FFFD}'), "{chunk:?}");
        out.push_str(&chunk);
    }
    assert!(d.pending().is_empty());
    assert_eq!(out, text);
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn llama_bpe_metadata_and_specials() {
    let tok = llama_bpe();
    assert_eq!(tok.model(), TokenizerModel::Bpe);
    assert_eq!(tok.pre_tokenizer(), Some(PreTokenizer::Llama3));
    assert!(tok.add_bos() && !tok.add_space_prefix());
    let bos = tok.token_to_id("<|begin_of_text|>").unwrap();
    assert_eq!(tok.bos(), Some(bos));
    let ids = tok.encode("Hello world", false, false);
    assert_eq!(tok.encode("Hello world", true, false)[0], bos);
    assert_eq!(&tok.encode("Hello world", true, false)[1..], ids);
    let eot = tok.token_to_id("<|eot_id|>").unwrap();
    assert!(tok.is_eog(eot) && tok.eot() == Some(eot));
    let chat = tok.encode(
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        false,
        true,
    );
    assert_eq!(chat.last(), Some(&eot));
    assert_eq!(
        tok.decode(&chat).unwrap(),
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    );
    // digits go in runs of up to three
    let n = tok.encode("1234567", false, false);
    let pieces: Vec<String> = n
        .iter()
        .map(|&id| String::from_utf8(tok.token_bytes(id).unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(pieces, ["123", "456", "7"]);
}

//! StreamDecoder: only complete UTF-8 comes out, split characters are held back.

mod common;

use common::{golden, ids, qwen2_fixture};
use shohin_tokenizer::StreamDecoder;

/// Decode `ids` token by token; checks every chunk and returns their concatenation.
fn stream(ids: &[u32]) -> String {
    let tok = qwen2_fixture();
    let mut d = StreamDecoder::new();
    let mut all = String::new();
    for &id in ids {
        let chunk = d.push(tok, id).unwrap();
        assert!(
            !chunk.contains('\u{FFFD}'),
            "replacement char in chunk {chunk:?} after id {id}"
        );
        all.push_str(&chunk);
    }
    assert!(d.pending().is_empty(), "bytes left over: {:?}", d.pending());
    all.push_str(&d.flush());
    all
}

#[test]
fn tiny_model_answer_streams_to_its_text() {
    let g = golden("tiny-q1_0_once.json");
    let ids = ids(&g["greedy_ids"]);
    assert_eq!(ids, [123506, 123506, 104592, 123506, 3095, 3095]);
    assert_eq!(stream(&ids), "𬴊𬴊大赛𬴊oundsounds");
    assert_eq!(stream(&ids), g["greedy_text"].as_str().unwrap());
}

#[test]
fn characters_split_across_tokens_are_held_back() {
    let tok = qwen2_fixture();
    // rare characters the vocabulary spells with several byte-level tokens
    let text = "x🫠y 𝄞 ꙮ 𓀀 ﷽ ok";
    let ids = tok.encode(text, false, false);
    let partial: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|&id| std::str::from_utf8(tok.token_bytes(id).unwrap()).is_err())
        .collect();
    assert!(
        partial.len() >= 4,
        "test text must contain tokens holding partial characters: {ids:?}"
    );
    assert_eq!(stream(&ids), text);

    // step by step: a token with only the first bytes of a character yields
    // nothing and keeps them; the completing token releases the whole char
    let mut d = StreamDecoder::new();
    let mut seen_hold = false;
    for &id in &ids {
        let before = d.pending().len();
        let out = d.push(tok, id).unwrap();
        if std::str::from_utf8(tok.token_bytes(id).unwrap()).is_err() && before == 0 {
            assert!(
                !d.pending().is_empty(),
                "partial token {id} was not held back"
            );
            seen_hold = true;
        }
        assert!(
            d.pending().len() < 4,
            "at most 3 bytes of one char are pending"
        );
        assert!(!out.contains('\u{FFFD}'));
    }
    assert!(seen_hold);
}

#[test]
fn byte_by_byte_tokens_of_a_four_byte_char() {
    let tok = qwen2_fixture();
    // "🫠" = F0 9F AB A0, fed as four single-byte tokens
    let byte_ids: Vec<u32> = "🫠".bytes().map(byte_token).collect();
    let mut d = StreamDecoder::new();
    for &id in &byte_ids[..3] {
        assert_eq!(d.push(tok, id).unwrap(), "");
    }
    assert_eq!(d.pending().len(), 3);
    assert_eq!(d.push(tok, byte_ids[3]).unwrap(), "🫠");
    assert!(d.pending().is_empty());
}

/// The id of the single-byte token for `b` (its GPT-2 byte-level character).
fn byte_token(b: u8) -> u32 {
    let keeps = |x: u8| {
        (b'!'..=b'~').contains(&x) || (0xA1..=0xAC).contains(&x) || (0xAE..=0xFF).contains(&x)
    };
    let c = if keeps(b) {
        char::from(b)
    } else {
        char::from_u32(256 + (0..b).filter(|&x| !keeps(x)).count() as u32).unwrap()
    };
    qwen2_fixture().token_to_id(&c.to_string()).unwrap()
}

#[test]
fn invalid_bytes_become_replacement_chars_and_flush_empties() {
    let tok = qwen2_fixture();
    let mut d = StreamDecoder::new();
    // a lone continuation byte can never become valid: replaced at once
    assert_eq!(d.push(tok, byte_token(0x80)).unwrap(), "\u{FFFD}");
    // a lead byte followed by ASCII: the lead byte is replaced, the ASCII kept
    assert_eq!(d.push(tok, byte_token(0xE4)).unwrap(), "");
    assert_eq!(d.push(tok, byte_token(b'a')).unwrap(), "\u{FFFD}a");
    // an incomplete tail at the end of the stream is flushed lossily
    assert_eq!(d.push(tok, byte_token(0xF0)).unwrap(), "");
    assert_eq!(d.push(tok, byte_token(0x9F)).unwrap(), "");
    assert_eq!(d.flush(), "\u{FFFD}");
    assert!(d.pending().is_empty());
    assert_eq!(d.flush(), "");
}

#[test]
fn special_tokens_render_unless_disabled_and_bad_ids_error() {
    let tok = qwen2_fixture();
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(tok, 151645).unwrap(), "<|im_end|>");
    let mut quiet = StreamDecoder::with_special(false);
    assert_eq!(quiet.push(tok, 151645).unwrap(), "");
    assert_eq!(quiet.push(tok, 198).unwrap(), "\n");
    let err = d.push(tok, 1_000_000).unwrap_err();
    assert!(err.to_string().contains("1000000"), "{err}");
}

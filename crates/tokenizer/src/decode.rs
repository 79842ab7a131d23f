//! Token ids → bytes / text, and streaming UTF-8 assembly.

use crate::vocab::attr;
use crate::{Tokenizer, TokenizerError};

impl Tokenizer {
    fn check_id(&self, id: u32) -> Result<usize, TokenizerError> {
        let i = id as usize;
        if i < self.texts.len() {
            Ok(i)
        } else {
            Err(TokenizerError::IdOutOfVocab {
                id,
                n_vocab: self.texts.len(),
            })
        }
    }

    /// Raw bytes of one token (llama.cpp `llama_token_to_piece(.., special = true)`):
    /// byte-level decoded for normal tokens, the text itself for CONTROL /
    /// USER_DEFINED tokens, empty for UNUSED ones. `None` if out of vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|p| &p[..])
    }

    /// Like [`Tokenizer::token_bytes`], but with `special = false` CONTROL and
    /// UNKNOWN tokens render as nothing (llama.cpp `token_to_piece(.., special)`).
    pub fn piece(&self, id: u32, special: bool) -> Result<&[u8], TokenizerError> {
        let i = self.check_id(id)?;
        if !special && self.attrs[i] & (attr::CONTROL | attr::UNKNOWN) != 0 {
            return Ok(&[]);
        }
        Ok(&self.pieces[i])
    }

    /// Bytes of a token sequence (llama.cpp `llama_detokenize(.., remove_special = false,
    /// unparse_special = special)`): with `add_space_prefix` (SentencePiece)
    /// one leading space of the first token's piece is dropped, and the
    /// `clean_spaces` pass runs where the vocabulary enables it (gpt-2,
    /// llama3; not qwen2 or SentencePiece).
    pub fn decode_bytes(&self, ids: &[u32], special: bool) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.piece(id, special)?;
            // llama.cpp passes lstrip = 1 for the first token only, whatever
            // it renders as (a skipped control token uses the chance up)
            let strip = i == 0 && self.add_space_prefix && piece.first() == Some(&b' ');
            out.extend_from_slice(&piece[usize::from(strip)..]);
        }
        if self.clean_spaces {
            clean_spaces(&mut out);
        }
        Ok(out)
    }

    /// Text of a token sequence, special tokens rendered as their text.
    /// Lossless for the output of [`Tokenizer::encode`] with qwen2 and
    /// SentencePiece (without BOS); invalid
    /// UTF-8 (e.g. a cut multi-byte character) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.decode_with(ids, true)
    }

    /// Like [`Tokenizer::decode`]; with `special = false` CONTROL tokens are omitted.
    pub fn decode_with(&self, ids: &[u32], special: bool) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids, special)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}

/// llama-vocab.cpp `detokenize`, `clean_spaces` block: drop the space before
/// `?!.,`, around a lone `'`, and before `'s 'm 're 've`.
fn clean_spaces(text: &mut Vec<u8>) {
    // pass 1: " ?", " !", " .", " ,"
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for (i, &x) in text.iter().enumerate() {
        if i > 0 && text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    // pass 2: " ' " -> "'" (llama.cpp zeroes the following space in place,
    // which a later match can observe; mirrored here)
    let mut t = std::mem::take(&mut out);
    let mut i = 0;
    while i < t.len() {
        let x = t[i];
        if i > 0 && x == b'\'' && i + 1 < t.len() && t[i - 1] == b' ' && t[i + 1] == b' ' {
            out.pop();
            t[i + 1] = 0;
            out.push(x);
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // pass 3: " 's", " 'm", " 're", " 've"
    let t = std::mem::take(&mut out);
    for (i, &x) in t.iter().enumerate() {
        if i > 0 && t[i - 1] == b' ' && x == b'\'' && i + 1 < t.len() {
            let x1 = t[i + 1];
            let x2 = t.get(i + 2).copied();
            if matches!(x1, b's' | b'm') || (matches!((x1, x2), (b'r' | b'v', Some(b'e')))) {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

/// Turns a stream of token ids into text, emitting only complete UTF-8:
/// a character split across tokens is held back until its last byte arrives.
///
/// By default each token renders as llama.cpp's `llama_token_to_piece`
/// (lstrip 0), which is what its generation loops print: generated text
/// continues a prompt, so a SentencePiece token's leading space is kept.
/// [`StreamDecoder::sequence`] instead follows `llama_detokenize` for a
/// sequence decoded from its start (the space prefix of the first token
/// dropped); neither applies `clean_spaces`, which needs look-ahead.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    special: bool,
    /// The next push is the sequence's first token and may lose its
    /// leading space (llama.cpp `remove_space`).
    strip_first: bool,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamDecoder {
    /// A decoder that renders special tokens as their text (like [`Tokenizer::decode`]).
    pub fn new() -> Self {
        Self::with_special(true)
    }

    /// A decoder; with `special = false` CONTROL tokens render as nothing.
    pub fn with_special(special: bool) -> Self {
        StreamDecoder {
            pending: Vec::new(),
            special,
            strip_first: false,
        }
    }

    /// A decoder for a whole sequence from its first token: when the
    /// vocabulary has `add_space_prefix` (SentencePiece), the leading space
    /// of the first token is dropped, as [`Tokenizer::decode_with`] does, so
    /// the pushed output concatenates to its result (for vocabularies
    /// without `clean_spaces`).
    pub fn sequence(special: bool) -> Self {
        StreamDecoder {
            strip_first: true,
            ..Self::with_special(special)
        }
    }

    /// Add one token; returns the text that became complete (possibly empty).
    /// Byte sequences that can never become valid UTF-8 are replaced by U+FFFD.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String, TokenizerError> {
        let piece = tok.piece(id, self.special)?;
        let strip = std::mem::take(&mut self.strip_first)
            && tok.add_space_prefix
            && piece.first() == Some(&b' ');
        self.pending.extend_from_slice(&piece[usize::from(strip)..]);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // the prefix up to `valid_up_to` is valid UTF-8 by definition
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // invalid sequence in the middle: replace it and go on
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        // incomplete character at the end: keep it for later
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// End of stream: the held-back bytes, lossily decoded (U+FFFD for an
    /// incomplete character); the decoder is then empty.
    pub fn flush(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::clean_spaces;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_like_llama_cpp() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(clean("a ' ' b"), "a'' b");
        assert_eq!(
            clean("it 's we 're I 'm they 've"),
            "it's we're I'm they've"
        );
        // " 't", " 'd", " 'll" keep their space
        assert_eq!(clean("don 't I 'd we 'll"), "don 't I 'd we 'll");
    }
}

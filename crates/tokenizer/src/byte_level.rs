//! GPT-2 byte-level alphabet: every byte is spelled as one printable code point.
//!
//! Source: OpenAI GPT-2 `bytes_to_unicode`, as implemented by llama.cpp
//! src/unicode.cpp `unicode_byte_to_utf8_map`: the bytes `!`..=`~`,
//! `¡`..=`¬` and `®`..=`ÿ` map to themselves; the remaining 68 bytes map, in
//! increasing order, to U+0100, U+0101, ...

/// Byte → code point of the byte-level alphabet.
pub(crate) static BYTE_TO_CHAR: [char; 256] = {
    let mut t = ['\0'; 256];
    let mut n = 0u32;
    let mut b = 0usize;
    while b < 256 {
        let printable =
            (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        let cpt = if printable {
            b as u32
        } else {
            n += 1;
            0x100 + n - 1
        };
        t[b] = match char::from_u32(cpt) {
            Some(c) => c,
            None => panic!("byte-level code points are below U+0144"),
        };
        b += 1;
    }
    t
};

/// Inverse of [`BYTE_TO_CHAR`], as a table over the code points below U+0144.
pub(crate) struct CharToByte([Option<u8>; 0x144]);

impl CharToByte {
    pub(crate) fn new() -> Self {
        let mut t = [None; 0x144];
        for b in 0..=255u8 {
            t[BYTE_TO_CHAR[b as usize] as usize] = Some(b);
        }
        CharToByte(t)
    }

    pub(crate) fn get(&self, c: char) -> Option<u8> {
        self.0.get(c as usize).copied().flatten()
    }
}

/// llama-vocab.cpp `llama_decode_text`: the bytes a byte-level token spells.
/// A code point outside the alphabet becomes `[UNK_BYTE_0x<hex of its UTF-8><token text>]`,
/// exactly as llama.cpp renders it.
pub(crate) fn decode_token_text(text: &str, map: &CharToByte) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match map.get(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{byte:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_matches_gpt2() {
        // well-known spellings: space = 'Ġ' (U+0120), newline = 'Ċ' (U+010A), 0xFF = 'ÿ'
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[b'\t' as usize], 'ĉ');
        assert_eq!(BYTE_TO_CHAR[0x00], 'Ā');
        assert_eq!(BYTE_TO_CHAR[0xAD], 'Ń');
        assert_eq!(BYTE_TO_CHAR[b'a' as usize], 'a');
        assert_eq!(BYTE_TO_CHAR[0xFF], 'ÿ');
        let map = CharToByte::new();
        for b in 0..=255u8 {
            let c = BYTE_TO_CHAR[b as usize];
            assert_eq!(map.get(c), Some(b));
        }
        assert_eq!(map.get(' '), None);
        assert_eq!(map.get('大'), None);
    }

    #[test]
    fn unknown_code_point_renders_like_llama_cpp() {
        let map = CharToByte::new();
        assert_eq!(decode_token_text("ĠhiĊ", &map), b" hi\n");
        assert_eq!(decode_token_text("a b", &map), b"a[UNK_BYTE_0x20a b]b");
    }
}

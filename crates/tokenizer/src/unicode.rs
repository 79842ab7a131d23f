//! Code point classes exactly as llama.cpp sees them (unicode.h `unicode_cpt_flags`).
//!
//! The table in `unicode_table.rs` is generated from llama.cpp's own
//! `unicode-data.cpp`, so `\p{L}`, `\p{N}` and `\s` here agree with llama.cpp
//! even where Rust's or Python's Unicode version would differ.

use crate::unicode_table::{CATEGORY_RANGES, WHITESPACE};

/// Category bits of llama.cpp unicode.h `unicode_cpt_flags` (low byte) plus
/// its helper `WHITESPACE` bit. The empty value (0) stands for "no code point"
/// (a position outside the text), like llama.cpp's default-constructed flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Flags(u16);

const NUMBER: u16 = 0x0002;
const LETTER: u16 = 0x0004;
const WHITESPACE_BIT: u16 = 0x0100;

impl Flags {
    /// Flags of a position outside the text.
    pub(crate) const NONE: Flags = Flags(0);

    pub(crate) fn is_letter(self) -> bool {
        self.0 & LETTER != 0
    }
    pub(crate) fn is_number(self) -> bool {
        self.0 & NUMBER != 0
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & WHITESPACE_BIT != 0
    }
    /// llama.cpp `as_uint() != 0`: true for every real code point (even
    /// unassigned ones carry the UNDEFINED bit), false only outside the text.
    pub(crate) fn is_some(self) -> bool {
        self.0 != 0
    }
}

const fn lookup_category(cpt: u32) -> u8 {
    // binary search for the last range starting at or before `cpt`
    let mut lo = 0usize;
    let mut hi = CATEGORY_RANGES.len() - 1;
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if CATEGORY_RANGES[mid].0 <= cpt {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    CATEGORY_RANGES[lo].1
}

const fn is_ws(cpt: u32) -> bool {
    let mut i = 0;
    while i < WHITESPACE.len() {
        if WHITESPACE[i] == cpt {
            return true;
        }
        i += 1;
    }
    false
}

const fn compute(cpt: u32) -> u16 {
    let mut f = lookup_category(cpt) as u16;
    if is_ws(cpt) {
        f |= WHITESPACE_BIT;
    }
    f
}

/// ASCII fast path, computed at compile time from the same table.
static ASCII: [u16; 128] = {
    let mut t = [0u16; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = compute(i as u32);
        i += 1;
    }
    t
};

/// Flags of one code point (llama.cpp `unicode_cpt_flags_from_cpt`).
pub(crate) fn flags(c: char) -> Flags {
    let cpt = c as u32;
    if cpt < 128 {
        return Flags(ASCII[cpt as usize]);
    }
    let mut f = lookup_category(cpt) as u16;
    if WHITESPACE.binary_search(&cpt).is_ok() {
        f |= WHITESPACE_BIT;
    }
    Flags(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_known_code_points() {
        for c in ['a', 'Z', 'é', 'ß', 'ж', '大', 'ㄱ', '𬴊'] {
            assert!(flags(c).is_letter(), "{c:?}");
        }
        for c in ['0', '9', '½', '²', '٣', 'Ⅻ'] {
            assert!(flags(c).is_number(), "{c:?}");
        }
        for c in [
            ' ', '\t', '\n', '\r', '\u{0B}', '\u{85}', '\u{A0}', '\u{3000}',
        ] {
            assert!(flags(c).is_whitespace(), "{c:?}");
        }
        // combining marks, punctuation, symbols, emoji: none of L, N, \s
        for c in ['\u{301}', '!', '~', '$', '€', '😀', '\u{200D}'] {
            let f = flags(c);
            assert!(
                !f.is_letter() && !f.is_number() && !f.is_whitespace() && f.is_some(),
                "{c:?}"
            );
        }
        // unassigned code point: UNDEFINED, still "some"
        let f = flags('\u{0378}');
        assert!(f.is_some() && !f.is_letter());
        // zero-width space is not whitespace for llama.cpp (it is Cf)
        assert!(!flags('\u{200B}').is_whitespace());
    }
}

//! Vocabulary loading and validation: [`VocabData`] → [`Tokenizer`].
//!
//! Mirrors what llama-vocab.cpp `llama_vocab::impl::load` does for
//! `tokenizer.ggml.model = "gpt2"`: token attributes from token types, the
//! merge ranks, special-token auto-detection by text (EOT/EOG/FIM), the
//! special-token cache (longest text first) and the token → piece cache.

use std::collections::HashMap;

use crate::bpe::{pair_key, MergeMap, NO_TOKEN};
use crate::byte_level::{decode_token_text, CharToByte, BYTE_TO_CHAR};
use crate::fxhash::FxBuildHasher;
use crate::pretok::PreTokenizer;
use crate::special;
use crate::TokenizerError;

/// Token text → id.
pub(crate) type TextMap = HashMap<String, u32, FxBuildHasher>;

/// Plain vocabulary data, as stored in GGUF metadata (`tokenizer.ggml.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VocabData {
    /// `tokenizer.ggml.tokens`: token texts in byte-level spelling; index = id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type` (see [`token_type`]); empty = all NORMAL.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`: `"LEFT RIGHT"` lines, rank = index.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.pre`, e.g. `"qwen2"`.
    pub pre: String,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`; when absent it is auto-detected by text
    /// as llama.cpp does (e.g. `<|im_end|>`).
    pub eot: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` (llama.cpp's default for gpt2/qwen2 is false).
    pub add_bos: bool,
    /// `tokenizer.ggml.add_eos_token` (default false).
    pub add_eos: bool,
}

/// Token type values of `tokenizer.ggml.token_type` (llama.h `llama_token_type`).
pub mod token_type {
    pub const UNDEFINED: i32 = 0;
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Token attribute bits (llama.h `llama_token_attr`).
pub(crate) mod attr {
    pub const UNKNOWN: u8 = 1 << 0;
    pub const UNUSED: u8 = 1 << 1;
    pub const NORMAL: u8 = 1 << 2;
    pub const CONTROL: u8 = 1 << 3;
    pub const USER_DEFINED: u8 = 1 << 4;
    pub const BYTE: u8 = 1 << 5;
}

/// llama-vocab.cpp: the token-type → attribute switch (unknown values → UNDEFINED = 0).
fn attr_of_type(t: i32) -> u8 {
    match t {
        token_type::UNKNOWN => attr::UNKNOWN,
        token_type::UNUSED => attr::UNUSED,
        token_type::NORMAL => attr::NORMAL,
        token_type::CONTROL => attr::CONTROL,
        token_type::USER_DEFINED => attr::USER_DEFINED,
        token_type::BYTE => attr::BYTE,
        _ => 0,
    }
}

/// A byte-level BPE tokenizer equivalent to llama.cpp's for `gpt2`-model vocabularies.
pub struct Tokenizer {
    pub(crate) texts: Vec<String>,
    pub(crate) attrs: Vec<u8>,
    pub(crate) text_to_id: TextMap,
    /// Token of each byte's byte-level character, or [`NO_TOKEN`].
    pub(crate) byte_token: [u32; 256],
    pub(crate) merges: MergeMap,
    /// Token → bytes with special tokens rendered (llama.cpp `cache_token_to_piece`).
    pub(crate) pieces: Vec<Box<[u8]>>,
    /// Ids matched in raw text before BPE, longest text first (`cache_special_tokens`).
    pub(crate) special_sorted: Vec<u32>,
    pub(crate) pre: PreTokenizer,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) eot: Option<u32>,
    pub(crate) pad: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    /// Sorted end-of-generation ids.
    pub(crate) eog: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("n_vocab", &self.texts.len())
            .field("n_merges", &self.merges.len())
            .field("pre", &self.pre)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("eog", &self.eog)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Validate `v` and build the tokenizer.
    pub fn new(v: VocabData) -> Result<Self, TokenizerError> {
        let n = v.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if n > i32::MAX as usize {
            return Err(TokenizerError::TooManyTokens(n));
        }
        if !v.token_types.is_empty() && v.token_types.len() < n {
            return Err(TokenizerError::TokenTypesTooShort {
                n_types: v.token_types.len(),
                n_tokens: n,
            });
        }
        let pre = PreTokenizer::from_name(&v.pre)
            .ok_or_else(|| TokenizerError::UnknownPreTokenizer(v.pre.clone()))?;

        // tokens, attributes, text → id (llama.cpp renames empty tokens "[EMPTY_<id>]")
        let mut texts = v.tokens;
        let mut attrs = Vec::with_capacity(n);
        let mut text_to_id = TextMap::with_capacity_and_hasher(n, FxBuildHasher::default());
        for (i, text) in texts.iter_mut().enumerate() {
            let id = i as u32; // n <= i32::MAX checked above
            if text.is_empty() {
                *text = format!("[EMPTY_{i}]");
            }
            if let Some(&first) = text_to_id.get(text.as_str()) {
                return Err(TokenizerError::DuplicateToken {
                    text: text.clone(),
                    first,
                    second: id,
                });
            }
            text_to_id.insert(text.clone(), id);
            let a = v
                .token_types
                .get(i)
                .map_or(attr::NORMAL, |&t| attr_of_type(t));
            if a & attr::BYTE != 0 && parse_byte_token(text).is_none() {
                return Err(TokenizerError::BadByteToken {
                    id,
                    text: text.clone(),
                });
            }
            attrs.push(a);
        }

        let merges = build_merges(&v.merges, &text_to_id)?;

        let check = |which: &'static str, id: Option<u32>| match id {
            Some(id) if id as usize >= n => Err(TokenizerError::SpecialIdOutOfRange {
                which,
                id,
                n_vocab: n,
            }),
            _ => Ok(id),
        };
        let bos = check("bos", v.bos)?;
        let eos = check("eos", v.eos)?;
        let eot_given = check("eot", v.eot)?;
        let pad = check("pad", v.pad)?;
        if v.add_bos && bos.is_none() {
            return Err(TokenizerError::MissingSpecialForAdd { which: "bos" });
        }
        if v.add_eos && eos.is_none() {
            return Err(TokenizerError::MissingSpecialForAdd { which: "eos" });
        }

        let (eot, eog) = special::detect(&text_to_id, &mut attrs, eos, eot_given);

        // special-token cache: CONTROL | USER_DEFINED | UNKNOWN, longest text first
        // (llama.cpp sorts by length only; ties by id here, for determinism)
        let mut special_sorted: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                attrs[id as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        special_sorted.sort_by(|&a, &b| {
            texts[b as usize]
                .len()
                .cmp(&texts[a as usize].len())
                .then(a.cmp(&b))
        });

        let mut byte_token = [NO_TOKEN; 256];
        for (b, slot) in byte_token.iter_mut().enumerate() {
            let mut buf = [0u8; 4];
            if let Some(&id) = text_to_id.get(&*BYTE_TO_CHAR[b].encode_utf8(&mut buf)) {
                *slot = id;
            }
        }

        let map = CharToByte::new();
        let pieces = texts
            .iter()
            .zip(&attrs)
            .map(|(t, &a)| render_piece(t, a, &map).into_boxed_slice())
            .collect();

        Ok(Tokenizer {
            texts,
            attrs,
            text_to_id,
            byte_token,
            merges,
            pieces,
            special_sorted,
            pre,
            bos,
            eos,
            eot,
            pad,
            add_bos: v.add_bos,
            add_eos: v.add_eos,
            eog,
        })
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.texts.len()
    }
    /// Beginning-of-sequence id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// End-of-turn id (given, or auto-detected by text like llama.cpp).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    /// Padding id.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// The pre-tokenizer in use.
    pub fn pre_tokenizer(&self) -> PreTokenizer {
        self.pre
    }

    /// Whether generation should stop at `id` (llama.cpp `llama_vocab_is_eog`):
    /// eos, eot, and tokens such as `<|im_end|>`, `<|endoftext|>`, `<|fim_pad|>`,
    /// `<|repo_name|>`, `<|file_sep|>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation ids, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// Whether `id` is a CONTROL token (e.g. `<|im_start|>`), which llama.cpp
    /// renders only when asked to render special tokens.
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & attr::CONTROL != 0)
    }

    /// Id of the token whose text (as stored in the vocabulary) is `s`.
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.text_to_id.get(s).copied()
    }

    /// The token's text as stored in the vocabulary (byte-level spelling).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }
}

/// `<0xXX>` → byte (llama-vocab.cpp `token_to_byte`).
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// llama-vocab.cpp `token_to_piece` for BPE with `special = true`: special
/// tokens as their text, NORMAL tokens byte-level decoded, BYTE tokens as
/// their byte, anything else (UNUSED, UNDEFINED) empty.
fn render_piece(text: &str, a: u8, map: &CharToByte) -> Vec<u8> {
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        text.as_bytes().to_vec()
    } else if a & attr::NORMAL != 0 {
        decode_token_text(text, map)
    } else if a & attr::BYTE != 0 {
        parse_byte_token(text).map(|b| vec![b]).unwrap_or_default()
    } else {
        Vec::new()
    }
}

/// Parse the merge lines (llama-vocab.cpp: split at the first space at or after
/// byte 1; the first occurrence of a pair keeps its rank).
fn build_merges(lines: &[String], text_to_id: &TextMap) -> Result<MergeMap, TokenizerError> {
    let mut merges = MergeMap::with_capacity_and_hasher(lines.len(), Default::default());
    let mut joined = String::new();
    for (index, line) in lines.iter().enumerate() {
        let malformed = || TokenizerError::MalformedMerge {
            index,
            line: line.clone(),
        };
        // ' ' is ASCII, so a byte search from index 1 lands on a char boundary
        let pos = line
            .bytes()
            .skip(1)
            .position(|b| b == b' ')
            .map(|p| p + 1)
            .ok_or_else(malformed)?;
        let (left, right) = (&line[..pos], &line[pos + 1..]);
        if right.is_empty() || right.contains(' ') {
            return Err(malformed());
        }
        let id_of = |t: &str| {
            text_to_id
                .get(t)
                .copied()
                .ok_or_else(|| TokenizerError::MergeUnknownToken {
                    index,
                    line: line.clone(),
                    token: t.to_string(),
                })
        };
        let (l, r) = (id_of(left)?, id_of(right)?);
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let merged =
            *text_to_id
                .get(joined.as_str())
                .ok_or_else(|| TokenizerError::MergeResultUnknown {
                    index,
                    line: line.clone(),
                    result: joined.clone(),
                })?;
        let rank = u32::try_from(index).map_err(|_| malformed())?;
        merges.entry(pair_key(l, r)).or_insert((rank, merged));
    }
    Ok(merges)
}

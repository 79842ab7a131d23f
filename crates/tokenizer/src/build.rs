//! [`GgufVocab`] / [`VocabData`] → [`Tokenizer`]: validation, llama.cpp's
//! per-model defaults, and the caches.
//!
//! Mirrors llama-vocab.cpp `llama_vocab::impl::load`: the tokenizer model
//! picks the algorithm and the default special ids / flags, the
//! pre-tokenizer name (BPE only) picks the word splitter, then token
//! attributes come from the token types, special tokens are auto-detected by
//! text (EOT/EOG/FIM), and the special-token and token → piece caches are built.

use crate::bpe::{pair_key, MergeMap, NO_TOKEN};
use crate::byte_level::{decode_token_text, CharToByte, BYTE_TO_CHAR};
use crate::fxhash::FxBuildHasher;
use crate::pretok::PreTokenizer;
use crate::special;
use crate::spm::unescape_whitespace;
use crate::vocab::{attr, attr_of_type, parse_byte_token, TextMap, TokenizerModel};
use crate::{GgufVocab, Tokenizer, TokenizerError, VocabData};

impl Tokenizer {
    /// Validate a byte-level BPE vocabulary and build the tokenizer
    /// (`add_bos`/`add_eos` as given). Same as
    /// [`Tokenizer::from_gguf_vocab`] with `model = "gpt2"`.
    pub fn new(v: VocabData) -> Result<Self, TokenizerError> {
        Self::from_gguf_vocab(v.into())
    }

    /// Validate GGUF tokenizer metadata and build the tokenizer, filling in
    /// llama.cpp's defaults for absent keys:
    ///
    /// * `"llama"` (SentencePiece): bos 1, eos 2, unk 0 (when in range),
    ///   `add_bos` true, `add_space_prefix` true; `pre` and `merges` ignored.
    /// * `"gpt2"` (BPE): `pre` must name a supported pre-tokenizer;
    ///   `add_bos` true for llama3, false otherwise; `add_space_prefix` false.
    ///
    /// Any other model (e.g. `"t5"`, `"bert"`, `"rwkv"`) is an error naming it.
    pub fn from_gguf_vocab(v: GgufVocab) -> Result<Self, TokenizerError> {
        let model = match v.model.as_str() {
            "gpt2" => TokenizerModel::Bpe,
            "llama" => TokenizerModel::Spm,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let pre = match model {
            TokenizerModel::Bpe => {
                // llama.cpp reads a missing key as the "default" pre-tokenizer
                let name = v.pre.as_deref().unwrap_or("default");
                Some(
                    PreTokenizer::from_name(name)
                        .ok_or_else(|| TokenizerError::UnknownPreTokenizer(name.to_string()))?,
                )
            }
            TokenizerModel::Spm => None,
        };

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
        if !v.scores.is_empty() && v.scores.len() < n {
            return Err(TokenizerError::ScoresTooShort {
                n_scores: v.scores.len(),
                n_tokens: n,
            });
        }

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

        let (merges, scores) = match model {
            TokenizerModel::Bpe => (build_merges(&v.merges, &text_to_id)?, Vec::new()),
            // the SentencePiece merge queue orders by score; -0.0 is made 0.0
            // so that equal scores compare equal as in llama.cpp's `<`
            TokenizerModel::Spm => (
                MergeMap::default(),
                (0..n)
                    .map(|i| v.scores.get(i).map_or(0.0, |&s| s + 0.0))
                    .collect(),
            ),
        };

        let check = |which: &'static str, id: Option<u32>| match id {
            Some(id) if id as usize >= n => Err(TokenizerError::SpecialIdOutOfRange {
                which,
                id,
                n_vocab: n,
            }),
            _ => Ok(id),
        };
        // llama-vocab.cpp: SPM defaults bos 1, eos 2, unk 0; a default that is
        // outside the vocabulary is dropped (a given id out of range is an
        // error here, where llama.cpp warns and keeps the default)
        let spm_default = |given: Option<u32>, default: u32| match (model, given) {
            (TokenizerModel::Spm, None) if (default as usize) < n => Some(default),
            _ => given,
        };
        let bos = check("bos", spm_default(v.bos, 1))?;
        let eos = check("eos", spm_default(v.eos, 2))?;
        let unk = check("unk", spm_default(v.unk, 0))?;
        let eot_given = check("eot", v.eot)?;
        let pad = check("pad", v.pad)?;

        let is_spm = model == TokenizerModel::Spm;
        let add_bos = v
            .add_bos
            .unwrap_or(is_spm || pre.is_some_and(PreTokenizer::default_add_bos));
        let add_eos = v.add_eos.unwrap_or(false);
        let add_space_prefix = v.add_space_prefix.unwrap_or(is_spm);
        if add_bos && bos.is_none() {
            return Err(TokenizerError::MissingSpecialForAdd { which: "bos" });
        }
        if add_eos && eos.is_none() {
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

        let byte_token = match model {
            TokenizerModel::Bpe => bpe_byte_tokens(&text_to_id),
            TokenizerModel::Spm => spm_byte_tokens(&text_to_id),
        };

        let map = CharToByte::new();
        let pieces = texts
            .iter()
            .zip(&attrs)
            .map(|(t, &a)| render_piece(model, t, a, &map).into_boxed_slice())
            .collect();

        Ok(Tokenizer {
            model,
            texts,
            attrs,
            text_to_id,
            byte_token,
            merges,
            scores,
            pieces,
            special_sorted,
            pre,
            ignore_merges: pre.is_some_and(PreTokenizer::ignore_merges),
            // llama-vocab.cpp: SPM sets clean_spaces false; BPE per pre-tokenizer
            clean_spaces: pre.is_some_and(PreTokenizer::clean_spaces),
            add_space_prefix,
            bos,
            eos,
            eot,
            unk,
            pad,
            add_bos,
            add_eos,
            eog,
        })
    }
}

/// BPE: each byte's token is its GPT-2 byte-level character.
fn bpe_byte_tokens(text_to_id: &TextMap) -> [u32; 256] {
    let mut byte_token = [NO_TOKEN; 256];
    for (b, slot) in byte_token.iter_mut().enumerate() {
        let mut buf = [0u8; 4];
        if let Some(&id) = text_to_id.get(&*BYTE_TO_CHAR[b].encode_utf8(&mut buf)) {
            *slot = id;
        }
    }
    byte_token
}

/// SentencePiece byte fallback (llama-vocab.cpp `byte_to_token`): the token
/// `<0xXX>` (upper-case hex), else the one-byte token text itself. A byte
/// above 0x7F alone is not UTF-8, so only ASCII can take the second route.
fn spm_byte_tokens(text_to_id: &TextMap) -> [u32; 256] {
    let mut byte_token = [NO_TOKEN; 256];
    for (b, slot) in byte_token.iter_mut().enumerate() {
        let hex = format!("<0x{b:02X}>");
        let plain = (b < 0x80).then(|| char::from(b as u8).to_string());
        if let Some(&id) = text_to_id
            .get(&hex)
            .or_else(|| plain.and_then(|p| text_to_id.get(&p)))
        {
            *slot = id;
        }
    }
    byte_token
}

/// llama-vocab.cpp `token_to_piece` with `special = true`: special tokens as
/// their text; NORMAL tokens byte-level decoded (BPE) or with U+2581 read as
/// a space (SentencePiece); BYTE tokens as their byte; anything else
/// (UNUSED, UNDEFINED) empty.
fn render_piece(model: TokenizerModel, text: &str, a: u8, map: &CharToByte) -> Vec<u8> {
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        text.as_bytes().to_vec()
    } else if a & attr::NORMAL != 0 {
        match model {
            TokenizerModel::Bpe => decode_token_text(text, map),
            TokenizerModel::Spm => unescape_whitespace(text).into_bytes(),
        }
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

//! shohin's tokenizer as llguidance sees it: a token trie over each token's
//! bytes, special (CONTROL) tokens marked with toktrie's 0xFF prefix so that
//! grammars never produce them from text, and the end-of-generation tokens
//! as the grammar's EOS set (allowed only where the grammar may end).

use crate::GrammarError;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use shohin_tokenizer::Tokenizer;
use std::sync::Arc;

struct Env {
    trie: TokTrie,
    tok: Arc<Tokenizer>,
}

impl TokenizerEnv for Env {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Used by llguidance for forced-token and literal tokenization; the
    /// bytes of a grammar literal are text, so a lossy UTF-8 view is exact
    /// for every literal a grammar can hold.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.tok.encode(&String::from_utf8_lossy(s), false, false)
    }
}

pub fn tok_env(tok: &Arc<Tokenizer>) -> Result<TokEnv, GrammarError> {
    let n = tok.n_vocab();
    let words: Vec<Vec<u8>> = (0..n as u32)
        .map(|id| {
            let bytes = tok.token_bytes(id).unwrap_or(&[]);
            if tok.is_control(id) && !bytes.is_empty() {
                let mut w = Vec::with_capacity(bytes.len() + 1);
                w.push(TokTrie::SPECIAL_TOKEN_MARKER);
                w.extend_from_slice(bytes);
                w
            } else {
                bytes.to_vec()
            }
        })
        .collect();
    let eog = tok.eog_ids();
    let eos = tok
        .eos()
        .or_else(|| eog.first().copied())
        .ok_or_else(|| GrammarError::Tokenizer("the vocabulary has no end-of-text token".into()))?;
    let vocab_size =
        u32::try_from(n).map_err(|_| GrammarError::Tokenizer("vocabulary too large".into()))?;
    let mut info = TokRxInfo::new(vocab_size, eos);
    info.tok_bos = tok.bos();
    info.tok_pad = tok.pad();
    info.tok_end_of_turn = tok.eot();
    let mut eos_set: Vec<u32> = eog.to_vec();
    if !eos_set.contains(&eos) {
        eos_set.push(eos);
    }
    let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos_set);
    Ok(Arc::new(Env {
        trie,
        tok: tok.clone(),
    }))
}

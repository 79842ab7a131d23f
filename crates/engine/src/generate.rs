//! The generation loop's one step, shared by `run`, `chat` and `serve`:
//! sample a token from the logits, turn it into text (UTF-8 safe across
//! tokens), watch for end of generation, stop strings and the token limit,
//! and hold back text that may be the start of a stop string so that a
//! stop string is never emitted.
//!
//! The caller owns the sequence (a [`crate::session::Session`] or a server
//! slot): it asks [`Generator::next`] for the next token and evaluates it
//! when [`Next::finish`] is `None`.

use crate::sampler::{Sampler, SamplerConfig, SamplerError};
use shohin_grammar::{Constraint, GrammarError};
use shohin_tokenizer::{StreamDecoder, Tokenizer, TokenizerError};

/// Why a step could not produce a token.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Grammar(#[from] GrammarError),
}

/// What a generation may do and when it stops.
#[derive(Clone, Debug)]
pub struct GenParams {
    pub sampling: SamplerConfig,
    /// The most tokens to generate (the end-of-generation token counts).
    pub max_tokens: usize,
    /// Strings that end the generation; the text stops before them and
    /// they are never emitted.
    pub stop: Vec<String>,
    /// Report each token's log-probability and this many alternatives
    /// (`None`: no log-probabilities).
    pub logprobs: Option<usize>,
    /// Never sample an end-of-generation token (llama.cpp's `ignore_eos`:
    /// their logits are set to -inf), for benchmarks of fixed length.
    pub ignore_eos: bool,
    /// A grammar the output must follow (JSON schema, GBNF, ...): tokens it
    /// does not allow are masked before sampling, and the generation ends
    /// when the grammar is complete.
    pub constraint: Option<Constraint>,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            sampling: SamplerConfig::default(),
            max_tokens: usize::MAX,
            stop: Vec::new(),
            logprobs: None,
            ignore_eos: false,
            constraint: None,
        }
    }
}

/// Why a generation ended (OpenAI's `finish_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens`, or the context is full.
    Length,
    /// The client went away or the server is shutting down.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// The log-probability of a chosen token and of the most likely ones
/// (natural log of the softmax of the raw logits, before any sampling
/// transform, as OpenAI reports them).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
    /// The `k` most likely tokens, best first (ties: lower id first).
    pub top: Vec<(u32, f32)>,
}

/// One step's outcome.
#[derive(Clone, Debug)]
pub struct Next {
    /// The sampled token.
    pub id: u32,
    /// Text that is final now (may be empty: an incomplete UTF-8 sequence
    /// or a possible stop-string start is held back).
    pub text: String,
    pub logprob: Option<TokenLogprob>,
    /// `Some` when the generation is over; `id` is then not to be
    /// evaluated (it may be the end-of-generation token).
    pub finish: Option<FinishReason>,
    /// With `finish: Some(Stop)`: the index in `GenParams::stop` of the stop
    /// string that ended the generation (`None`: an end-of-generation token
    /// or the grammar's end).
    pub stop_sequence: Option<usize>,
}

#[derive(Debug)]
pub struct Generator {
    sampler: Sampler,
    dec: StreamDecoder,
    params: GenParams,
    /// Decoded text not yet emitted: it may be the start of a stop string.
    held: String,
    n: usize,
    /// The logits with end-of-generation tokens masked (`ignore_eos`).
    masked: Vec<f32>,
}

impl Generator {
    pub fn new(params: GenParams) -> Result<Self, SamplerError> {
        Ok(Self {
            sampler: Sampler::new(params.sampling)?,
            dec: StreamDecoder::new(),
            params,
            held: String::new(),
            n: 0,
            masked: Vec::new(),
        })
    }

    /// Tokens sampled so far.
    pub fn n_generated(&self) -> usize {
        self.n
    }

    pub fn params(&self) -> &GenParams {
        &self.params
    }

    /// Sample the next token from `logits` (`history`: the sequence so far,
    /// for the penalties). `room`: whether the context can hold one more
    /// token; without it the generation ends with `length`.
    pub fn next(
        &mut self,
        tok: &Tokenizer,
        logits: &[f32],
        history: &[u32],
        room: bool,
    ) -> Result<Next, StepError> {
        let logprob = self.params.logprobs.map(|k| logprob_of(logits, k));
        let id = if self.params.ignore_eos || self.params.constraint.is_some() {
            self.masked.clear();
            self.masked.extend_from_slice(logits);
            if let Some(c) = &mut self.params.constraint {
                c.mask_logits(&mut self.masked)?;
            }
            if self.params.ignore_eos {
                for &e in tok.eog_ids() {
                    if let Some(l) = self.masked.get_mut(e as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            self.sampler.sample(&self.masked, history)
        } else {
            self.sampler.sample(logits, history)
        };
        let logprob = logprob.map(|f| f(id));
        self.n += 1;
        // The grammar is complete once it allows nothing but the end: the
        // token just sampled is its last one (or the end token itself).
        let mut grammar_done = false;
        if let Some(c) = &mut self.params.constraint {
            if !tok.is_eog(id) {
                c.commit(id)?;
            }
            grammar_done = c.is_finished();
        }
        if tok.is_eog(id) {
            let text = self.finish_text();
            return Ok(Next {
                id,
                text,
                logprob,
                finish: Some(FinishReason::Stop),
                stop_sequence: None,
            });
        }
        let piece = self.dec.push(tok, id)?;
        self.held.push_str(&piece);
        if let Some((cut, which)) = self.first_stop() {
            self.held.truncate(cut);
            let text = std::mem::take(&mut self.held);
            return Ok(Next {
                id,
                text,
                logprob,
                finish: Some(FinishReason::Stop),
                stop_sequence: Some(which),
            });
        }
        if grammar_done {
            let text = self.finish_text();
            return Ok(Next {
                id,
                text,
                logprob,
                finish: Some(FinishReason::Stop),
                stop_sequence: None,
            });
        }
        if self.n >= self.params.max_tokens || !room {
            let text = self.finish_text();
            return Ok(Next {
                id,
                text,
                logprob,
                finish: Some(FinishReason::Length),
                stop_sequence: None,
            });
        }
        let keep = self.stop_prefix_len();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        Ok(Next {
            id,
            text,
            logprob,
            finish: None,
            stop_sequence: None,
        })
    }

    /// Everything still held, at the end of the generation (a stop string
    /// cannot start any more).
    pub fn finish_text(&mut self) -> String {
        let mut t = std::mem::take(&mut self.held);
        t.push_str(&self.dec.flush());
        if let Some((cut, _)) = first_stop(&t, &self.params.stop) {
            t.truncate(cut);
        }
        t
    }

    fn first_stop(&self) -> Option<(usize, usize)> {
        first_stop(&self.held, &self.params.stop)
    }

    /// The longest suffix of the held text that is a proper prefix of a
    /// stop string (on a char boundary).
    fn stop_prefix_len(&self) -> usize {
        let h = &self.held;
        let mut best = 0;
        for s in &self.params.stop {
            for (i, _) in s.char_indices().skip(1) {
                let p = &s[..i];
                if i > best && h.ends_with(p) {
                    best = i;
                }
            }
        }
        best
    }
}

/// Byte offset of the earliest stop string in `text`, and its index in
/// `stop`.
fn first_stop(text: &str, stop: &[String]) -> Option<(usize, usize)> {
    stop.iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .filter_map(|(i, s)| text.find(s.as_str()).map(|at| (at, i)))
        .min()
}

/// Log-softmax of `logits` (in f64 for the sum), returning a function from
/// the chosen id to its [`TokenLogprob`] with the `k` best alternatives.
fn logprob_of(logits: &[f32], k: usize) -> impl FnOnce(u32) -> TokenLogprob + '_ {
    let max = logits
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| f64::from(v - max).exp())
        .sum();
    let lse = f64::from(max) + sum.ln();
    let lp = move |v: f32| (f64::from(v) - lse) as f32;
    move |id| TokenLogprob {
        id,
        logprob: logits
            .get(id as usize)
            .map_or(f32::NEG_INFINITY, |&v| lp(v)),
        top: top_k(logits, k)
            .into_iter()
            .map(|(i, v)| (i, lp(v)))
            .collect(),
    }
}

/// The `k` largest logits as `(id, logit)`, descending (ties: lower id first).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(idx.len());
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, logits[i as usize])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_finds_the_earliest() {
        let stop = vec!["END".to_string(), "x".to_string(), String::new()];
        assert_eq!(first_stop("abcENDx", &stop), Some((3, 0)));
        assert_eq!(first_stop("abc", &stop), None);
    }

    #[test]
    fn logprobs_are_a_log_softmax() {
        let l = [1.0f32, 2.0, 3.0, 0.5];
        let t = logprob_of(&l, 2)(1);
        let z: f64 = l.iter().map(|&v| f64::from(v).exp()).sum();
        assert!((f64::from(t.logprob) - (2.0 - z.ln())).abs() < 1e-6);
        assert_eq!(t.top.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 1]);
        assert!((f64::from(t.top[0].1) - (3.0 - z.ln())).abs() < 1e-6);
    }
}

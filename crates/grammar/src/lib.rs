//! Constrained decoding: a grammar (a JSON schema, OpenAI's `json_object`,
//! a Lark grammar, llama.cpp's GBNF, or a regular expression) becomes, at
//! every generation step, the set of tokens that keep the output inside the
//! grammar. The engine sets the logits of every other token to -inf before
//! sampling, so the output is valid by construction at any temperature.
//!
//! The matching is llguidance's (the Earley parser + token trie that vLLM,
//! SGLang and mistral.rs use): [`Grammars`] holds its per-vocabulary state
//! (the token trie and the lexer slices, built once per model), and
//! [`Grammars::compile`] turns a [`GrammarSpec`] into a [`Constraint`] for
//! one sequence. GBNF is translated to llguidance's Lark dialect
//! ([`gbnf::to_lark`]).
//!
//! A schema feature llguidance cannot enforce is an error at compile time
//! (llguidance is run non-lenient: "Unimplemented keys: [...]"), never a
//! silently unconstrained answer.

pub mod gbnf;
mod tokenizer_env;

use llguidance::api::TopLevelGrammar;
use llguidance::earley::SlicedBiasComputer;
use llguidance::toktrie::{InferenceCapabilities, SimpleVob};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};
use shohin_tokenizer::Tokenizer;
use std::sync::Arc;

/// Why a grammar could not be compiled or followed.
#[derive(Debug, thiserror::Error)]
pub enum GrammarError {
    /// The grammar or schema is invalid or uses an unsupported feature.
    #[error("{0}")]
    Invalid(String),
    /// The vocabulary could not be turned into a token trie.
    #[error("the tokenizer cannot be used for constrained decoding: {0}")]
    Tokenizer(String),
    /// The parser failed while generating (e.g. its resource limits).
    #[error("constrained decoding failed: {0}")]
    Matcher(String),
}

/// What to constrain the output to.
#[derive(Clone, Debug, PartialEq)]
pub enum GrammarSpec {
    /// A JSON schema (OpenAI `response_format: {type: json_schema}`,
    /// llama.cpp's `json_schema`).
    JsonSchema(Value),
    /// Any JSON object (OpenAI `response_format: {type: json_object}`).
    JsonObject,
    /// llguidance's Lark-like grammar syntax.
    Lark(String),
    /// llama.cpp's GBNF (`grammar`, `--grammar-file`).
    Gbnf(String),
    /// A regular expression the whole output must match.
    Regex(String),
}

/// How JSON is laid out when the schema does not say: one space after `,`
/// and `:` and no other whitespace. llguidance's default lets the model put
/// any whitespace between tokens, and small models at high temperature then
/// emit runs of newlines until `max_tokens` cuts the JSON; a fixed layout
/// keeps the output parseable and short. A schema's own `x-guidance` options
/// take precedence.
pub fn json_layout() -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
    })
}

impl GrammarSpec {
    fn top_level(&self) -> Result<TopLevelGrammar, GrammarError> {
        Ok(match self {
            GrammarSpec::JsonSchema(schema) => {
                let Value::Object(obj) = schema else {
                    // `true` / `false` are valid JSON schemas but say nothing
                    // useful (or forbid everything): ask for an object.
                    return Err(GrammarError::Invalid(
                        "a JSON schema must be an object".to_string(),
                    ));
                };
                let mut obj = obj.clone();
                let mut layout = json_layout();
                if let Some(Value::Object(user)) = obj.get("x-guidance") {
                    for (k, v) in user {
                        layout[k] = v.clone();
                    }
                }
                obj.insert("x-guidance".to_string(), layout);
                TopLevelGrammar::from_json_schema(Value::Object(obj))
            }
            GrammarSpec::JsonObject => TopLevelGrammar::from_json_schema(json!({
                "type": "object",
                "x-guidance": json_layout(),
            })),
            GrammarSpec::Lark(g) => TopLevelGrammar::from_lark(g.clone()),
            GrammarSpec::Gbnf(g) => TopLevelGrammar::from_lark(gbnf::to_lark(g)?),
            GrammarSpec::Regex(r) => TopLevelGrammar::from_regex(r),
        })
    }
}

/// The per-vocabulary state of constrained decoding: build once per model
/// (a few hundred milliseconds for a 150k vocabulary), share by `Arc`.
pub struct Grammars {
    factory: ParserFactory,
    n_vocab: usize,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars")
            .field("n_vocab", &self.n_vocab)
            .finish_non_exhaustive()
    }
}

impl Grammars {
    pub fn new(tok: &Arc<Tokenizer>) -> Result<Self, GrammarError> {
        let env = tokenizer_env::tok_env(tok)?;
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities::default(),
            &SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| GrammarError::Tokenizer(e.to_string()))?;
        // Errors are returned to the caller; nothing goes to stderr.
        factory.quiet();
        Ok(Self {
            factory,
            n_vocab: tok.n_vocab(),
        })
    }

    /// A fresh constraint for one sequence. Compiles the grammar and
    /// computes the first mask, so that every error a grammar can have
    /// shows here, before any token is generated.
    pub fn compile(&self, spec: &GrammarSpec) -> Result<Constraint, GrammarError> {
        let top = spec.top_level()?;
        let parser = self
            .factory
            .create_parser(top)
            .map_err(|e| GrammarError::Invalid(e.to_string()))?;
        let mut m = Matcher::new(Ok(parser));
        let first = m
            .compute_mask()
            .map_err(|e| GrammarError::Invalid(e.to_string()))?;
        Ok(Constraint(Box::new(Inner {
            m,
            next_mask: Some(first),
        })))
    }
}

/// One sequence's position in its grammar (boxed: the matcher is large,
/// and generation parameters are moved around by value).
pub struct Constraint(Box<Inner>);

struct Inner {
    m: Matcher,
    /// The mask for the next step when it was computed ahead (at compile).
    next_mask: Option<SimpleVob>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("stopped", &self.0.m.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Clone for Constraint {
    /// An independent copy at the same position (for the `n` choices of one
    /// request).
    fn clone(&self) -> Self {
        Self(Box::new(Inner {
            m: self.0.m.deep_clone(),
            next_mask: self.0.next_mask.clone(),
        }))
    }
}

impl Constraint {
    /// Sets the logit of every token the grammar does not allow next to
    /// -inf (end-of-generation tokens are allowed only where the grammar
    /// may end). Logits past the vocabulary are always disallowed.
    pub fn mask_logits(&mut self, logits: &mut [f32]) -> Result<(), GrammarError> {
        let inner = &mut *self.0;
        let mask = match inner.next_mask.take() {
            Some(m) => m,
            None => inner
                .m
                .compute_mask()
                .map_err(|e| GrammarError::Matcher(e.to_string()))?,
        };
        let n = mask.len().min(logits.len());
        mask.iter_unset_entries(|i| {
            if i < n {
                logits[i] = f32::NEG_INFINITY;
            }
        });
        for l in logits.iter_mut().skip(n) {
            *l = f32::NEG_INFINITY;
        }
        Ok(())
    }

    /// Advances past the sampled token (which the last mask allowed).
    pub fn commit(&mut self, id: u32) -> Result<(), GrammarError> {
        self.0.next_mask = None;
        self.0
            .m
            .consume_token(id)
            .map_err(|e| GrammarError::Matcher(e.to_string()))
    }

    /// The grammar is complete and allows nothing more: the generation ends
    /// here (without an end-of-generation token).
    pub fn is_finished(&self) -> bool {
        self.0.m.is_stopped()
    }

    /// The output so far is a complete sentence of the grammar.
    pub fn is_accepting(&mut self) -> bool {
        self.0.m.is_accepting().unwrap_or(false)
    }
}

//! SCAFFOLD: tokenizer helper writes this crate.

//! `shohin tokenize`: ids of a text, as llama-tokenize prints them.

use crate::args::TokenizeArgs;
use crate::load::open_gguf;
use anyhow::{Context, Result};

pub fn tokenize(a: TokenizeArgs) -> Result<()> {
    let file = open_gguf(&a.model)?;
    let tok = shohin_engine::vocab::load_tokenizer(&file)
        .with_context(|| a.model.display().to_string())?;
    let ids = tok.encode(&a.text, true, !a.no_parse_special);
    if a.json {
        println!("{}", serde_json::json!({ "ids": ids }));
    } else {
        let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        println!("[{}]", list.join(", "));
    }
    Ok(())
}

//! `--json-schema`, `--json-schema-file`, `--grammar`, `--grammar-file` on
//! `run` and `chat` (llama.cpp's flags): the output must follow the grammar
//! (`shohin_grammar`, llguidance masks).

use crate::args::GrammarArgs;
use anyhow::{Context, Result};
use shohin_grammar::{Constraint, GrammarSpec, Grammars};
use shohin_tokenizer::Tokenizer;
use std::path::Path;
use std::sync::Arc;

fn read(flag: &str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))
}

fn json(flag: &str, what: &str, text: &str) -> Result<GrammarSpec> {
    let v: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{flag} {what}: not valid JSON"))?;
    Ok(GrammarSpec::JsonSchema(v))
}

/// The grammar the flags ask for (checked before the model loads).
pub fn spec(a: &GrammarArgs) -> Result<Option<GrammarSpec>> {
    let mut found = Vec::new();
    if let Some(s) = &a.json_schema {
        // Inline JSON, or the name of a file holding it.
        let p = Path::new(s);
        if !s.trim_start().starts_with('{') && p.is_file() {
            found.push((
                "--json-schema",
                json("--json-schema", s, &read("--json-schema", p)?)?,
            ));
        } else {
            found.push(("--json-schema", json("--json-schema", "(inline)", s)?));
        }
    }
    if let Some(p) = &a.json_schema_file {
        let text = read("--json-schema-file", p)?;
        found.push((
            "--json-schema-file",
            json("--json-schema-file", &p.display().to_string(), &text)?,
        ));
    }
    if let Some(g) = &a.grammar {
        found.push(("--grammar", GrammarSpec::Gbnf(g.clone())));
    }
    if let Some(p) = &a.grammar_file {
        found.push((
            "--grammar-file",
            GrammarSpec::Gbnf(read("--grammar-file", p)?),
        ));
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|f| f.0).collect();
        anyhow::bail!("give only one of {}", names.join(", "));
    }
    Ok(found.pop().map(|f| f.1))
}

/// Compiles `spec` for the model's vocabulary.
pub fn compile(spec: Option<&GrammarSpec>, tok: &Arc<Tokenizer>) -> Result<Option<Constraint>> {
    let Some(spec) = spec else { return Ok(None) };
    let g = Grammars::new(tok)?;
    Ok(Some(g.compile(spec).context("the grammar")?))
}

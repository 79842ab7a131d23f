//! `shohin info`: what a GGUF file holds, without loading the weights.

use crate::args::InfoArgs;
use crate::load::open_gguf;
use anyhow::{Context, Result};
use serde_json::json;
use shohin_engine::config::ModelConfig;
use std::collections::BTreeMap;

pub fn info(a: InfoArgs) -> Result<()> {
    let f = open_gguf(&a.model)?;
    let name = a.model.display().to_string();
    let cfg = ModelConfig::from_gguf(&f).with_context(|| name.clone())?;
    let tok = shohin_engine::vocab::load_tokenizer(&f).with_context(|| name.clone())?;

    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    let (mut n_elems, mut n_bytes) = (0u64, 0u64);
    for t in f.tensors() {
        *per_type.entry(t.ggml_type.name().to_string()).or_default() += 1;
        n_elems = n_elems.saturating_add(t.n_elements);
        n_bytes = n_bytes.saturating_add(t.n_bytes);
    }
    let bpw = if n_elems > 0 {
        n_bytes as f64 * 8.0 / n_elems as f64
    } else {
        0.0
    };
    let special =
        |id: Option<u32>| id.map(|i| json!({"id": i, "text": tok.token_text(i).unwrap_or("")}));
    let has_template = f.get("tokenizer.chat_template").is_some();
    let obj = json!({
        "file": name,
        "file_size": f.file_size(),
        "gguf_version": f.version(),
        "name": f.get_str("general.name").ok(),
        "architecture": cfg.arch.name(),
        "hparams": {
            "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head,
            "n_head_kv": cfg.n_head_kv, "head_dim": cfg.head_dim, "head_dim_v": cfg.head_dim_v,
            "n_ff": cfg.n_ff, "n_ctx_train": cfg.n_ctx_train, "rope_freq_base": cfg.rope_base,
            "rms_eps": cfg.rms_eps,
        },
        "n_params": n_elems,
        "tensor_bytes": n_bytes,
        "bits_per_weight": bpw,
        "tensors": f.tensors().len(),
        "tensor_types": per_type,
        "tied_output": f.tensor("output.weight").is_none(),
        "vocab_size": tok.n_vocab(),
        "special_tokens": {
            "bos": special(tok.bos()), "eos": special(tok.eos()),
            "eot": special(tok.eot()), "pad": special(tok.pad()),
        },
        "chat_template": has_template,
    });
    if a.json {
        println!("{obj}");
        return Ok(());
    }
    println!(
        "file:           {} ({:.2} MiB, GGUF v{})",
        obj["file"].as_str().unwrap_or(""),
        f.file_size() as f64 / (1024.0 * 1024.0),
        f.version()
    );
    if let Some(n) = obj["name"].as_str() {
        println!("name:           {n}");
    }
    println!("architecture:   {}", cfg.arch.name());
    println!(
        "layers {} | embd {} | heads {} (kv {}) | head_dim {} | ffn {} | ctx {} | rope base {} | eps {:e}",
        cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_head_kv, cfg.head_dim, cfg.n_ff,
        cfg.n_ctx_train, cfg.rope_base, cfg.rms_eps
    );
    println!(
        "parameters:     {:.3} B, {:.3} bits per weight",
        n_elems as f64 / 1e9,
        bpw
    );
    let types: Vec<String> = per_type.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!(
        "tensors:        {} ({})",
        f.tensors().len(),
        types.join(", ")
    );
    println!(
        "output:         {}",
        if f.tensor("output.weight").is_none() {
            "tied to token_embd"
        } else {
            "output.weight"
        }
    );
    println!("vocabulary:     {} tokens", tok.n_vocab());
    for (k, id) in [
        ("bos", tok.bos()),
        ("eos", tok.eos()),
        ("eot", tok.eot()),
        ("pad", tok.pad()),
    ] {
        if let Some(i) = id {
            println!("  {k}: {i} {:?}", tok.token_text(i).unwrap_or(""));
        }
    }
    println!(
        "chat template:  {}",
        if has_template {
            "yes"
        } else {
            "no (ChatML fallback)"
        }
    );
    Ok(())
}

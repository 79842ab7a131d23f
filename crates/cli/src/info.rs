//! `shohin info`: what a GGUF file holds, without loading the weights.

use crate::args::InfoArgs;
use crate::load::open_gguf;
use anyhow::{Context, Result};
use serde_json::json;
use shohin_engine::config::ModelConfig;
use shohin_engine::hadamard::{GdnHeads, HadamardFold};
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
            "n_ff": cfg.n_ff, "n_ctx_train": cfg.n_ctx_train, "rope_freq_base": cfg.rope.freq_base,
            "rms_eps": cfg.rms_eps,
        },
        "rope": {
            "scaling": cfg.rope.scaling.name(), "freq_scale": cfg.rope.freq_scale,
            "ext_factor": cfg.rope.ext_factor, "attn_factor": cfg.rope.attn_factor,
            "beta_fast": cfg.rope.beta_fast, "beta_slow": cfg.rope.beta_slow,
            "n_ctx_orig": cfg.rope.n_ctx_orig, "max_ctx": cfg.max_ctx(),
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
    let mut obj = obj;
    // The prism.hadamard weight fold (Bonsai 2), checked as at load.
    let gdn = cfg.hybrid.as_ref().map(|h| GdnHeads {
        n_v: h.n_v_heads,
        n_k: h.n_k_heads,
    });
    let fold = HadamardFold::from_gguf(&f, gdn).map_err(|e| e.to_string());
    obj["hadamard_fold"] = match &fold {
        Ok(None) => json!(null),
        Ok(Some(h)) => json!({
            "version": h.version(), "block_size": h.block_size(),
            "sign_mode": if h.explicit_signs() { "explicit" } else { "identity" },
            "folded_weights": h.weight_names().len(),
            "inverse_folded_embedding": h.folds_embedding(),
            "gdn_v_grouped": h.gdn_v_grouped(),
        }),
        Err(e) => json!({ "error": e }),
    };
    if let Some(h) = &cfg.hybrid {
        let rec: Vec<usize> = (0..cfg.n_layer).filter(|&i| h.recurrent[i]).collect();
        let attn: Vec<usize> = (0..cfg.n_layer).filter(|&i| !h.recurrent[i]).collect();
        obj["hybrid"] = json!({
            "recurrent_layers": rec, "attention_layers": attn,
            "rope_dims": h.n_rot, "ssm_conv_kernel": h.d_conv, "ssm_state_size": h.d_state,
            "ssm_group_count": h.n_k_heads, "ssm_v_heads": h.n_v_heads,
            "recurrent_state_bytes_per_sequence": rec.len() * h.state_floats() * 4,
        });
    }
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
        cfg.n_ctx_train, cfg.rope.freq_base, cfg.rms_eps
    );
    let r = &cfg.rope;
    if r.is_scaled() {
        println!(
            "rope scaling:   {} | freq scale {} (x{}) | original ctx {} | ext factor {} | attn factor {} | ctx up to {}",
            r.scaling.name(),
            r.freq_scale,
            1.0 / r.freq_scale,
            r.n_ctx_orig,
            r.ext_factor,
            r.attn_factor,
            cfg.max_ctx()
        );
    }
    if let Some(h) = &cfg.hybrid {
        let n_rec = h.recurrent.iter().filter(|&&r| r).count();
        let attn: Vec<String> = (0..cfg.n_layer)
            .filter(|&i| !h.recurrent[i])
            .map(|i| i.to_string())
            .collect();
        println!(
            "hybrid:         {n_rec} Gated DeltaNet layers, {} full attention (layers {}); RoPE on {} of {} head dims",
            attn.len(),
            attn.join(", "),
            h.n_rot,
            cfg.head_dim
        );
        println!(
            "  deltanet:     state {} | k heads {} | v heads {} | conv {} | recurrent state {:.2} MiB per sequence",
            h.d_state,
            h.n_k_heads,
            h.n_v_heads,
            h.d_conv,
            (n_rec * h.state_floats() * 4) as f64 / (1024.0 * 1024.0)
        );
    }
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
    match &fold {
        Ok(None) => {}
        Ok(Some(h)) => println!(
            "hadamard fold:  prism.hadamard v{}, block {}, {} signs, {} folded weights{}{}",
            h.version(),
            h.block_size(),
            if h.explicit_signs() { "explicit" } else { "no" },
            h.weight_names().len(),
            if h.folds_embedding() {
                ", token_embd inverse-folded"
            } else {
                ""
            },
            if h.gdn_v_grouped() {
                ", gdn_v_grouped"
            } else {
                ""
            }
        ),
        Err(e) => println!("hadamard fold:  unusable: {e}"),
    }
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

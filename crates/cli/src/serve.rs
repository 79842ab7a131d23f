//! `shohin serve`: the OpenAI-compatible HTTP server (`shohin-server`).
//! Binds first (so `/health` answers `loading`), loads the model on a
//! blocking thread, then serves until SIGINT / SIGTERM.
//! The `--lora` adapters are loaded once; requests choose their scales
//! (`lora` field, `/lora-adapters`; shohin-server's lora.rs). With
//! `--lookup` or `-md` every slot speculates (the engine's speculate.rs).

use crate::args::{PoolingArg, ReasoningFormat, ServeArgs};
use crate::load;
use anyhow::{Context, Result};
use shohin_engine::config::ModelConfig;
use shohin_engine::sampler::Sampler;
use shohin_engine::scheduler::{DraftSource, EngineConfig, Pooling, Speculation};
use shohin_engine::speculative::SpecConfig;
use shohin_server::{AppState, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// A slot holds at least this many positions.
const MIN_CTX_SLOT: usize = 16;

pub fn serve(a: ServeArgs) -> Result<()> {
    if a.parallel == 0 {
        anyhow::bail!("--parallel must be at least 1");
    }
    a.spec.check()?;
    // Check the flags and the file before binding the port.
    let sampling = load::sampler_config(&a.sampling, 0);
    Sampler::new(sampling).context("sampling flags")?;
    // The longest context a slot may have: the training context, or the
    // RoPE-scaled one with scaling on (the model's keys and the flags).
    let max_ctx = {
        let f = load::open_gguf(&a.model.model)?;
        let label = |e| anyhow::Error::new(e).context(a.model.model.display().to_string());
        let mut cfg = ModelConfig::from_gguf(&f).map_err(label)?;
        cfg.set_rope_overrides(&f, &a.model.rope.options()?)
            .map_err(label)?;
        if a.shift.keep()?.is_some() {
            shohin_engine::context_shift::check_config(&cfg).map_err(label)?;
        }
        cfg.max_ctx()
    };
    crate::spec::check_draft_file(&a.spec, &a.model.model)?;
    let ctx_per_slot = ctx_per_slot(a.model.ctx_size, a.parallel, max_ctx)?;
    let mut engine = EngineConfig::new(a.parallel, ctx_per_slot);
    engine.max_queue = a.max_queue;
    engine.context_shift = a.shift.keep()?;
    if a.batch_size == 0 || a.batch_size > 8192 {
        anyhow::bail!("-b/--batch-size must be in 1..=8192, got {}", a.batch_size);
    }
    engine.n_batch = a.batch_size;
    let draft_cfg = SpecConfig {
        n_max: a.spec.draft_max,
        n_min: a.spec.draft_min,
    };
    engine.speculation = a.spec.lookup.then_some(Speculation {
        source: DraftSource::Lookup {
            ngram: a.spec.lookup_ngram,
        },
        draft: draft_cfg,
    });
    let mut cfg = ServerConfig {
        alias: a.alias.clone(),
        api_key: a.api_key.clone(),
        sampling,
        seed: a.sampling.seed,
        pooling: match a.pooling {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Last => Pooling::Last,
            PoolingArg::Cls => Pooling::Cls,
        },
        engine,
        raw_reasoning: a.reasoning_format == ReasoningFormat::None,
        cors: a.cors.clone(),
        lora_init_without_apply: a.lora_init_without_apply,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shohin-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        eprintln!(
            "shohin serve: listening on http://{addr} ({} slots × {ctx_per_slot} tokens)",
            a.parallel
        );
        let model_args = {
            let mut m = a.model.clone();
            // --ctx-size is the total here, checked above; load() would
            // check it against the model as one context.
            m.ctx_size = None;
            m
        };
        let spec = a.spec.clone();
        let loader = move || -> Result<AppState, String> {
            let l = load::load(&model_args).map_err(|e| format!("{e:#}"))?;
            // The draft model (-md) is loaded with the target's threads,
            // cache types and repacking, and checked again.
            if let Some(d) =
                crate::spec::load_draft(&spec, &model_args, &l).map_err(|e| format!("{e:#}"))?
            {
                cfg.engine.speculation = Some(Speculation {
                    source: DraftSource::Model {
                        model: Arc::new(d.model),
                        p_min: spec.draft_p_min,
                    },
                    draft: draft_cfg,
                });
            }
            let path = model_args.model.clone();
            let st = AppState::new(Arc::new(l.model), l.tokenizer, &path, cfg)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!("shohin serve: model '{}' loaded, ready", st.model_id);
            Ok(st)
        };
        shohin_server::serve(listener, loader, shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
    });
    // Do not wait for a model load still running after an early signal.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Positions per slot: `--ctx-size` (the total, default `parallel` ×
/// min(`max_ctx`, 4096)) shared evenly; `max_ctx` is the training context,
/// or the RoPE-scaled one.
fn ctx_per_slot(total: Option<usize>, parallel: usize, max_ctx: usize) -> Result<usize> {
    let total = total.unwrap_or(parallel * max_ctx.min(4096));
    let per = total / parallel;
    if per < MIN_CTX_SLOT {
        anyhow::bail!(
            "--ctx-size {total} shared by {parallel} slots gives {per} positions per slot; \
             each slot needs at least {MIN_CTX_SLOT}"
        );
    }
    if per > max_ctx {
        anyhow::bail!(
            "--ctx-size {total} shared by {parallel} slots gives {per} positions per slot, \
             but the model supports {max_ctx} (its training context, or the RoPE-scaled one)"
        );
    }
    Ok(per)
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!(
        "shohin serve: shutting down (in-flight requests get {} s)",
        shohin_server::SHUTDOWN_GRACE.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_is_shared_by_the_slots() {
        assert_eq!(ctx_per_slot(None, 4, 32768).unwrap(), 4096);
        assert_eq!(ctx_per_slot(None, 2, 512).unwrap(), 512);
        assert_eq!(ctx_per_slot(Some(8192), 4, 32768).unwrap(), 2048);
        assert!(ctx_per_slot(Some(32), 4, 32768).is_err());
        assert!(ctx_per_slot(Some(4096), 1, 2048).is_err());
    }
}

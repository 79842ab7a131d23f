//! What every handler shares: the engine, tokenizer, chat template, the
//! names the model answers to, the API key and the sampling defaults.

use metrics_exporter_prometheus::PrometheusHandle;
use shohin_chat::ChatTemplate;
use shohin_engine::model::Model;
use shohin_engine::sampler::SamplerConfig;
use shohin_engine::scheduler::{Engine, EngineConfig, Pooling};
use shohin_grammar::{Constraint, GrammarSpec, Grammars};
use shohin_tokenizer::Tokenizer;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// How to serve a model (the `shohin serve` flags).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `--alias`: the model id reported and accepted (default: the file name).
    pub alias: Option<String>,
    /// `--api-key`: required as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Sampling defaults for fields a request leaves out (the CLI's
    /// sampling flags; the seed field is unused, see `seed`).
    pub sampling: SamplerConfig,
    /// `--seed`: the default seed; `None` draws a random one per request.
    pub seed: Option<u64>,
    /// `--pooling`: how `/v1/embeddings` pools the hidden states.
    pub pooling: Pooling,
    /// Slots, context per slot, queue bound.
    pub engine: EngineConfig,
    /// `--reasoning-format none`: `<think>` blocks stay in `content`.
    pub raw_reasoning: bool,
    /// `--cors`: browser origins allowed to call the API.
    pub cors: Vec<String>,
    /// `--lora-init-without-apply`: the loaded adapters' default scales
    /// start at 0 (requests and `POST /lora-adapters` set them).
    pub lora_init_without_apply: bool,
}

impl ServerConfig {
    pub fn new(engine: EngineConfig) -> Self {
        Self {
            alias: None,
            api_key: None,
            sampling: SamplerConfig::default(),
            seed: None,
            pooling: Pooling::Mean,
            engine,
            raw_reasoning: false,
            cors: Vec::new(),
            lora_init_without_apply: false,
        }
    }
}

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    /// The id reported in responses and `/v1/models`.
    pub model_id: String,
    /// Every `model` value a request may name: the id, the file name and
    /// the file stem.
    pub model_names: Vec<String>,
    pub api_key: Option<String>,
    pub sampling: SamplerConfig,
    pub seed: Option<u64>,
    pub pooling: Pooling,
    /// Unix time the model was loaded (`created` of `/v1/models`).
    pub created: u64,
    pub metrics: PrometheusHandle,
    /// `--reasoning-format none`: keep `<think>` blocks in the content.
    pub raw_reasoning: bool,
    /// `--cors` origins.
    pub cors: Vec<String>,
    /// The LoRA adapters loaded with the model and their default scales.
    pub lora: crate::lora::Loras,
    /// Constrained decoding's per-vocabulary state, built at the first
    /// request that needs it (a few hundred ms).
    grammars: OnceLock<Result<Arc<Grammars>, String>>,
}

/// The model id (`alias`, else the file name) and every name it answers to.
pub fn model_names(path: &Path, alias: Option<&str>) -> (String, Vec<String>) {
    let file = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.clone());
    let id = alias.map_or_else(|| file.clone(), str::to_string);
    let mut names = vec![id.clone()];
    for n in [file, stem] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    (id, names)
}

impl AppState {
    /// Starts the engine on `model` (loaded from `path`, its LoRA adapters
    /// active) and reads its chat template (ChatML when the file has none).
    pub fn new(
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        path: &Path,
        cfg: ServerConfig,
    ) -> shohin_engine::Result<Self> {
        let template = shohin_engine::vocab::load_chat_template(&model.file)?
            .unwrap_or_else(ChatTemplate::chatml);
        let (model_id, model_names) = model_names(path, cfg.alias.as_deref());
        let metrics = crate::metrics::prometheus_handle();
        // The adapters the loader made active are the ones requests pick
        // from; from now on the engine sets the model's active set per step.
        let lora = crate::lora::Loras::new(&model.adapters(), cfg.lora_init_without_apply);
        let engine = Arc::new(Engine::start(model, tokenizer.clone(), cfg.engine));
        Ok(Self {
            engine,
            tokenizer,
            template,
            model_id,
            model_names,
            api_key: cfg.api_key,
            sampling: cfg.sampling,
            seed: cfg.seed,
            pooling: cfg.pooling,
            created: unix_now(),
            metrics,
            raw_reasoning: cfg.raw_reasoning,
            cors: cfg.cors,
            lora,
            grammars: OnceLock::new(),
        })
    }

    /// Compiles a request's grammar (blocking: call from a blocking task).
    /// `param` names the request field in the 400 an invalid or unsupported
    /// grammar gets.
    pub fn compile_grammar(
        &self,
        spec: &GrammarSpec,
        param: &str,
    ) -> crate::error::ApiResult<Constraint> {
        let g = self
            .grammars
            .get_or_init(|| {
                Grammars::new(&self.tokenizer)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| crate::error::ApiError::internal(e.clone()))?;
        g.compile(spec).map_err(|e| {
            crate::error::ApiError::invalid(param, format!("'{param}' cannot be enforced: {e}"))
        })
    }

    /// The seed of a request that names none.
    pub fn default_seed(&self) -> u64 {
        self.seed.unwrap_or_else(rand::random)
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

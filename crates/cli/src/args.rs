//! Command-line flags, named as llama.cpp's tools name them where they overlap.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use shohin_engine::kv_cache::{CacheType, KvTypes};
use std::path::PathBuf;

mod groups;
pub use groups::{ContextShiftArgs, LoraArgs, RopeArgs, SpecArgs};

/// llama.cpp spells some flags with one dash and several letters (`-ctk`),
/// which clap cannot parse; they are rewritten to the long flags first.
pub fn llama_cpp_spellings(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    args.map(|a| match a.to_str() {
        Some("-ctk") => "--cache-type-k".into(),
        Some("-ctv") => "--cache-type-v".into(),
        Some("-np") => "--parallel".into(),
        Some("-md") => "--model-draft".into(),
        _ => a,
    })
    .collect()
}

fn cache_type() -> impl TypedValueParser<Value = CacheType> {
    let names = CacheType::ALL.map(|t| t.name());
    PossibleValuesParser::new(names).map(|s| s.parse::<CacheType>().expect("a listed name"))
}

/// KV cache storage (llama.cpp's `-ctk` / `-ctv`).
#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// KV cache type for keys and values: f16 (default), f32, or q8_0 (about
    /// half the memory of f16; q, k and v are rotated by a Hadamard block
    /// first, as llama.cpp does).
    #[arg(long = "cache-type", value_name = "TYPE", value_parser = cache_type())]
    pub cache_type: Option<CacheType>,
    /// KV cache type for keys only (overrides --cache-type; also -ctk).
    #[arg(long = "cache-type-k", value_name = "TYPE", value_parser = cache_type())]
    pub cache_type_k: Option<CacheType>,
    /// KV cache type for values only (overrides --cache-type; also -ctv).
    #[arg(long = "cache-type-v", value_name = "TYPE", value_parser = cache_type())]
    pub cache_type_v: Option<CacheType>,
}

impl CacheArgs {
    pub fn types(&self) -> KvTypes {
        let both = self.cache_type.unwrap_or_default();
        KvTypes {
            k: self.cache_type_k.unwrap_or(both),
            v: self.cache_type_v.unwrap_or(both),
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "shohin",
    version,
    about = "Fast, exact inference for 1-bit and ternary LLMs (GGUF)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Complete a prompt (no chat template; special tokens in the text are parsed).
    Run(RunArgs),
    /// Chat with the model using its chat template (interactive, or one-shot with -p).
    Chat(ChatArgs),
    /// Print the token ids of a text.
    Tokenize(TokenizeArgs),
    /// Describe a GGUF model: architecture, hyperparameters, tensor types, vocabulary.
    Info(InfoArgs),
    /// Measure prompt processing and generation speed (llama-bench's tests).
    Bench(BenchArgs),
    /// Serve the model over HTTP: OpenAI-compatible chat completions,
    /// completions, embeddings and models, plus /tokenize, /health, /metrics.
    Serve(ServeArgs),
    /// Quantize a GGUF file like llama-quantize (IN OUT TYPE), byte for byte.
    Quantize(QuantizeArgs),
    /// Perplexity of a text (llama-perplexity's method), and the KL divergence
    /// of this model's token distributions against a saved base run.
    Perplexity(PerplexityArgs),
    /// Convert a Hugging Face checkpoint directory (Qwen3, Qwen2 safetensors) to GGUF.
    Convert(ConvertArgs),
    /// Download a GGUF from the Hugging Face Hub into the cache; prints its path last.
    Pull(PullArgs),
    /// List the models in the cache, with their sizes.
    List(ListArgs),
    /// Remove a model (a repository, or one file of it) from the cache.
    Rm(RmArgs),
    /// Merge LoRA adapters into a model (llama-export-lora): adapted matrices
    /// are written as F16 (F32 if they were), the rest copied unchanged.
    ExportLora(ExportLoraArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Path to the GGUF model file, or hf:owner/name[:FILE] from the Hugging
    /// Face Hub (downloaded into the cache on first use).
    #[arg(short = 'm', long = "model", default_value = crate::pull::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Threads for the CPU backend (default: all cores).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
    /// Context size in tokens (default: min(model context, 4096)); for `serve`,
    /// the total over all slots (default: --parallel times that).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Keep the file's weight layout: do not repack 1-bit / ternary / Q5_0 /
    /// Q8_0 / Q4_K / Q6_K matrices for the interleaved kernels (llama.cpp's
    /// --no-repack; slower, for comparison and bisecting).
    #[arg(long = "no-repack", visible_alias = "nr")]
    pub no_repack: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub rope: RopeArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temp: f32,
    /// Top-k sampling (0 = off).
    #[arg(long = "top-k", default_value_t = 40, allow_negative_numbers = true)]
    pub top_k: usize,
    /// Top-p (nucleus) sampling (1.0 = off).
    #[arg(long = "top-p", default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Min-p sampling (0.0 = off).
    #[arg(long = "min-p", default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Repeat penalty (1.0 = off).
    #[arg(
        long = "repeat-penalty",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub repeat_penalty: f32,
    /// Tokens considered by the repeat penalty.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Presence penalty (0.0 = off).
    #[arg(
        long = "presence-penalty",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub presence_penalty: f32,
    /// Frequency penalty (0.0 = off).
    #[arg(
        long = "frequency-penalty",
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub frequency_penalty: f32,
    /// RNG seed: the same seed gives the same output (default: a random seed).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
}

/// Constrained decoding: the output must follow a grammar.
#[derive(Args, Debug, Clone, Default)]
pub struct GrammarArgs {
    /// A JSON schema the output must follow: inline JSON, or a file
    /// holding one (also -j).
    #[arg(short = 'j', long = "json-schema", value_name = "SCHEMA|FILE")]
    pub json_schema: Option<String>,
    /// A file holding a JSON schema the output must follow.
    #[arg(long = "json-schema-file", value_name = "FILE")]
    pub json_schema_file: Option<PathBuf>,
    /// A GBNF grammar (llama.cpp's format) the output must follow.
    #[arg(long = "grammar", value_name = "GBNF")]
    pub grammar: Option<String>,
    /// A file holding a GBNF grammar the output must follow.
    #[arg(long = "grammar-file", value_name = "FILE")]
    pub grammar_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt text.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: String,
    /// Tokens to generate (-1 = until end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub grammar: GrammarArgs,
    #[command(flatten)]
    pub shift: ContextShiftArgs,
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Print one JSON object (prompt ids, generated ids, text, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// With --json: add the K highest logits of every step.
    #[arg(long = "logits-top", value_name = "K")]
    pub logits_top: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One-shot: answer this message and exit.
    #[arg(short = 'p', long = "prompt")]
    pub prompt: Option<String>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Qwen3: turn thinking off (enable_thinking = false).
    #[arg(long = "no-think")]
    pub no_think: bool,
    /// Tokens per answer at most (-1 = until end of turn).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    pub n_predict: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub grammar: GrammarArgs,
    #[command(flatten)]
    pub shift: ContextShiftArgs,
    #[command(flatten)]
    pub spec: SpecArgs,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Path to the GGUF model file, or hf:owner/name[:FILE] (Hugging Face Hub).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Print `{"ids":[...]}`.
    #[arg(long)]
    pub json: bool,
    /// Do not parse special tokens such as <|im_start|> in the text.
    #[arg(long = "no-parse-special")]
    pub no_parse_special: bool,
    /// The text to tokenize.
    pub text: String,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// Path to the GGUF model file, or hf:owner/name[:FILE] (Hugging Face Hub).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Input GGUF file (F32 / F16 / BF16 tensors; quantized ones with --allow-requantize).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output GGUF file.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Target, as llama-quantize names it (case-insensitive): Q8_0, Q4_0, Q5_0, Q1_0, Q2_0,
    /// TQ1_0, TQ2_0, Q4_K_M, Q4_K_S, Q5_K_M, Q5_K_S, Q6_K, F16, BF16, F32.
    #[arg(value_name = "TYPE")]
    pub type_pos: Option<String>,
    /// The target type, as a flag (instead of the third argument).
    #[arg(long = "type", value_name = "TYPE", conflicts_with = "type_pos")]
    pub type_flag: Option<String>,
    /// Dequantize already-quantized tensors and quantize them again.
    #[arg(long = "allow-requantize")]
    pub allow_requantize: bool,
    /// Threads (default: all cores).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// Path to the GGUF model file, or hf:owner/name[:FILE] (Hugging Face Hub).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// The text file to evaluate.
    #[arg(short = 'f', long = "file", value_name = "TEXT")]
    pub file: PathBuf,
    /// Tokens per chunk (each chunk is scored on its second half).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    pub ctx_size: usize,
    /// Tokens per engine step: max(1, N / ctx-size) chunks run together
    /// (llama.cpp's -b; a chunk longer than N runs in pieces of N).
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
    pub batch_size: usize,
    /// Evaluate only the first N chunks (default: all).
    #[arg(long = "chunks", value_name = "N")]
    pub chunks: Option<usize>,
    /// Threads for the CPU backend (default: all cores).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
    /// Without --kl-divergence: save this model's log-probabilities of every
    /// scored token to FILE. With it: the base run to compare against.
    #[arg(long = "kl-divergence-base", value_name = "FILE")]
    pub kl_divergence_base: Option<PathBuf>,
    /// Compare against --kl-divergence-base: KL divergence, same top token,
    /// token probability and PPL ratio statistics (llama-perplexity's).
    #[arg(long = "kl-divergence")]
    pub kl_divergence: bool,
    /// Keep the file's weight layout (no repacking; llama.cpp's --no-repack).
    #[arg(long = "no-repack", visible_alias = "nr")]
    pub no_repack: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub rope: RopeArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Checkpoint directory: config.json, *.safetensors (or a sharded
    /// model.safetensors.index.json), tokenizer.json, tokenizer_config.json;
    /// or an ONNX ternary export (model.onnx [+ model.onnx.data] with 2-bit
    /// MatMulNBits layers, written as Q2_0 g128 without re-quantization).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The .onnx file to convert when DIR holds several (relative to DIR).
    #[arg(long = "onnx", value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// Output GGUF file.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Output type (as convert_hf_to_gguf.py's --outtype): f32, f16, bf16, q8_0;
    /// 1-D tensors and norms stay F32.
    #[arg(
        long = "type",
        alias = "outtype",
        value_name = "TYPE",
        default_value = "f16"
    )]
    pub out_type: String,
    /// Threads (default: all cores).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Path to the GGUF model file, or hf:owner/name[:FILE] (Hugging Face Hub).
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Benchmark a Bonsai-shaped model with random weights, built in memory:
    /// bonsai-8b|bonsai-4b|bonsai-1.7b|ternary-8b|ternary-g128-8b|tq2-8b|tq1-8b (any size suffix);
    /// Bonsai 2 (qwen35): bonsai2|ternary2|pq2|ptq1 (Q1_0, Q2_0, PQ2_0, PTQ1_0) -9b|-27b.
    #[arg(long, conflicts_with = "model")]
    pub synthetic: Option<String>,
    /// Threads (default: all cores).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
    /// Prompt tokens for the pp test (0 = skip).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    pub n_prompt: usize,
    /// Generated tokens for the tg test (0 = skip).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    pub n_gen: usize,
    /// Repetitions of each test (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    pub repetitions: usize,
    /// Sequences run together (llama-batched-bench's -npl): pp evaluates B
    /// prompts in shared steps, tg decodes B sequences one token each per
    /// step; t/s is the aggregate over all sequences.
    #[arg(long = "parallel", visible_alias = "npl", default_value_t = 1)]
    pub parallel: usize,
    /// Print a JSON array with llama-bench's keys, one object per test.
    #[arg(long)]
    pub json: bool,
    /// Keep the file's weight layout: do not repack 1-bit / ternary / Q5_0 /
    /// Q8_0 / Q4_K / Q6_K matrices for the interleaved kernels (llama.cpp's
    /// --no-repack; slower, for comparison and bisecting).
    #[arg(long = "no-repack", visible_alias = "nr")]
    pub no_repack: bool,
    #[command(flatten)]
    pub cache: CacheArgs,
    #[command(flatten)]
    pub rope: RopeArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Speculative decoding test: greedy generation of `-n` tokens after
    /// this file's text, plain and with --lookup or --model-draft, the
    /// tokens/s of both and their ratio (the outputs are checked equal).
    #[arg(long = "spec-prompt", value_name = "FILE", requires = "model")]
    pub spec_prompt: Option<PathBuf>,
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// How `/v1/embeddings` pools the prompt's hidden states.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingArg {
    Mean,
    Last,
    Cls,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The model, threads, cache and repacking flags; --ctx-size here is
    /// the TOTAL context, shared evenly by the slots (llama-server's -c).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the bound one is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests decoded at once (slots; also -np).
    #[arg(long = "parallel", default_value_t = 4)]
    pub parallel: usize,
    /// Context shift per slot: a generation that fills its slot's context
    /// goes on (default off: it ends with finish_reason `length`).
    #[command(flatten)]
    pub shift: ContextShiftArgs,
    /// Requests waiting for a slot at most; more are answered 429.
    #[arg(long = "max-queue", default_value_t = 256)]
    pub max_queue: usize,
    /// Tokens per engine step at most (decode tokens of every running
    /// request plus prompt chunks; llama-server's -b / -ub). While requests
    /// are streaming, prompts get at most 128 tokens of a step.
    #[arg(short = 'b', long = "batch-size", default_value_t = 256)]
    pub batch_size: usize,
    /// Require `Authorization: Bearer KEY` (not for /health and /metrics).
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_key: Option<String>,
    /// The model id reported and accepted (default: the file name; the
    /// file name and its stem are always accepted).
    #[arg(long)]
    pub alias: Option<String>,
    /// Pooling of /v1/embeddings.
    #[arg(long, value_enum, default_value_t = PoolingArg::Mean)]
    pub pooling: PoolingArg,
    /// Default sampling of requests that leave a field out.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// `auto`: a thinking model's `<think>` block goes to
    /// `reasoning_content`; `none`: it stays in `content` as generated.
    #[arg(long = "reasoning-format", value_enum, default_value_t = ReasoningFormat::Auto)]
    pub reasoning_format: ReasoningFormat,
    /// Allow browsers on this origin (e.g. http://localhost:3000) to call
    /// the API (CORS); repeatable. Preflights from other origins get 403.
    #[arg(long = "cors", value_name = "ORIGIN")]
    pub cors: Vec<String>,
    /// Load the --lora adapters with default scale 0: requests (`lora`
    /// field) or POST /lora-adapters turn them on (llama-server's flag).
    #[arg(long = "lora-init-without-apply")]
    pub lora_init_without_apply: bool,
    /// Speculative decoding in every slot: a draft model (-md, with a
    /// draft cache per slot) or --lookup, with --draft-max, --draft-min,
    /// --draft-p-min, --lookup-ngram.
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Where a thinking model's reasoning goes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasoningFormat {
    /// Separated into `reasoning_content` (llama.cpp's `deepseek` / `auto`).
    #[value(alias = "deepseek")]
    Auto,
    /// Kept in `content`.
    None,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// owner/name[:FILE] (without FILE: the repository's only .gguf).
    #[arg(value_name = "REPO[:FILE]")]
    pub model: String,
    /// Branch, tag or commit.
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// owner/name (the whole repository) or owner/name:FILE.
    #[arg(value_name = "REPO[:FILE]")]
    pub model: String,
}

#[derive(Args, Debug)]
pub struct ExportLoraArgs {
    /// The base model (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// The merged model to write.
    #[arg(
        short = 'o',
        long = "output",
        default_value = "ggml-lora-merged-f16.gguf"
    )]
    pub output: PathBuf,
    /// Threads (default: all cores).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    pub threads: usize,
}

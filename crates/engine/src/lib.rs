//! shohin's engine: backends, the qwen2/qwen3 model, KV cache, tokenizer
//! and chat glue, sampler and generator. Knows nothing of the CLI/server.

mod attention;
pub mod backend;
pub mod config;
pub mod error;
pub mod generate;
pub mod kv_cache;
pub mod model;
mod ops;
pub mod sampler;
pub mod scheduler;
pub mod session;
pub mod synthetic;
pub mod vocab;
pub mod weights;

pub use error::{EngineError, Result};

//! shohin's engine: backends, the qwen2/qwen3/qwen35 models, KV cache and
//! recurrent state, tokenizer and chat glue, sampler and generator. Knows
//! nothing of the CLI/server.

mod attention;
pub mod backend;
pub mod config;
pub mod context_shift;
mod delta_net;
pub mod error;
pub mod generate;
pub mod hadamard;
pub mod kv_cache;
pub mod lora;
pub mod model;
mod ops;
pub mod recurrent;
pub mod rope;
pub mod sampler;
pub mod scheduler;
pub mod session;
pub mod speculative;
pub mod synthetic;
pub mod vocab;
pub mod weights;

pub use error::{EngineError, Result};

//! shohin's HTTP server: OpenAI's chat completions, completions, Responses,
//! embeddings and models endpoints and Anthropic's Messages (wire formats as
//! theirs, streaming as server-sent events; the chat-shaped ones share one
//! request path, `conversation.rs` + `turn.rs`: template with tools,
//! grammar, output parsed into reasoning / content / tool calls),
//! llama-server's `/tokenize` and `/detokenize`, `/health`, Prometheus
//! `/metrics` and a web chat page at `/`, on top of the continuous-batching
//! [`shohin_engine::scheduler::Engine`].
//!
//! [`app`] builds the router for a loaded model (what the tests drive);
//! [`serve`] binds first, answers `/health` with 503 `loading` while the
//! model loads, then serves [`app`] until a shutdown signal, and drains
//! in-flight requests for at most [`SHUTDOWN_GRACE`].
//!
//! Notes on behaviour:
//! - `seed`: a request without one gets a fresh random seed (or the
//!   server's `--seed` when it was given); the same explicit seed and the
//!   same request give the same output. Choice `i` of `n` uses `seed + i`.
//! - `max_tokens` / `max_completion_tokens` default to "until the end of
//!   generation or a full slot context" (`finish_reason: "length"`).
//! - With `--api-key`, every endpoint but `/`, `/health` and `/metrics`
//!   needs `Authorization: Bearer KEY` or `x-api-key: KEY`.
//! - LoRA: the adapters `serve --lora` loaded apply per request, as
//!   llama-server's `lora` field and `/lora-adapters` endpoints (lora.rs).
//! - A client that disconnects cancels its request: the handler (or the
//!   SSE body) owns the engine's event receiver, and dropping it frees
//!   the slot within one engine step.

mod anthropic;
mod body;
mod chat;
mod completions;
mod conversation;
mod cors;
mod embeddings;
mod error;
mod generation;
mod lora;
mod messages;
mod metrics;
mod misc;
mod params;
mod responses;
mod server;
mod state;
mod tools;
mod turn;
mod webui;

pub use body::MAX_BODY_BYTES;
pub use error::ApiError;
pub use metrics::prometheus_handle;
pub use server::{app, gate, serve, SHUTDOWN_GRACE, SHUTDOWN_HARD};
pub use state::{model_names, AppState, ServerConfig};

//! LoRA adapters per request, as llama-server does them (tools/server:
//! README.md, `construct_lora_list` in server-context.cpp,
//! `parse_lora_request` in server-common.cpp):
//!
//! - the adapters are the ones `serve --lora` / `--lora-scaled` loaded, in
//!   that order; their index is their `id`;
//! - their default scales are the flags' (0 with
//!   `--lora-init-without-apply`); `POST /lora-adapters` replaces them and
//!   `GET /lora-adapters` lists them;
//! - a request's `lora: [{"id", "scale"}, ...]` sets the scales for that
//!   request alone, and the adapters it does not list run at scale 0. An
//!   absent, `null` or empty `lora` keeps the defaults (llama-server
//!   tests `task.params.lora.empty()`).
//!
//! Stricter than llama-server, which ignores what it cannot use: an id out
//! of range, a repeated id, a missing field or a scale that is not a finite
//! number in ±[`MAX_SCALE`] is a 400 naming the entry.

use crate::body::{type_name, Fields};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use shohin_engine::lora::{ActiveLora, LoraAdapter};
use std::sync::{Arc, RwLock};

/// The largest scale magnitude accepted: far past any useful strength, and
/// low enough that the deltas stay finite.
pub const MAX_SCALE: f64 = 100.0;

/// The loaded adapters and their default scales.
#[derive(Debug, Default)]
pub struct Loras {
    adapters: Vec<Arc<LoraAdapter>>,
    defaults: RwLock<Vec<f32>>,
}

impl Loras {
    /// The adapters `serve` loaded (the model's active set after loading)
    /// with their scales as defaults, or 0 when `init_without_apply`.
    pub fn new(loaded: &[ActiveLora], init_without_apply: bool) -> Self {
        Self {
            adapters: loaded.iter().map(|a| a.adapter.clone()).collect(),
            defaults: RwLock::new(
                loaded
                    .iter()
                    .map(|a| if init_without_apply { 0.0 } else { a.scale })
                    .collect(),
            ),
        }
    }

    pub fn len(&self) -> usize {
        self.adapters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty()
    }

    fn defaults(&self) -> Vec<f32> {
        self.defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The set a request runs with: `scales` (one per adapter) or, when
    /// `None`, the defaults as they are now.
    pub fn set(&self, scales: Option<Vec<f32>>) -> Vec<ActiveLora> {
        let scales = scales.unwrap_or_else(|| self.defaults());
        self.adapters
            .iter()
            .zip(scales)
            .map(|(a, scale)| ActiveLora {
                adapter: a.clone(),
                scale,
            })
            .collect()
    }
}

/// A list of `{id, scale}` entries as one scale per adapter: those not
/// listed get 0 (llama-server's `construct_lora_list`). `param` prefixes
/// the names of the fields an error blames.
fn parse_list(list: &[Value], param: &str, n: usize) -> ApiResult<Vec<f32>> {
    let mut scales = vec![0.0f32; n];
    let mut seen = vec![false; n];
    for (i, entry) in list.iter().enumerate() {
        let at = format!("{param}[{i}]");
        let Value::Object(o) = entry else {
            return Err(ApiError::invalid(
                at.clone(),
                format!(
                    "'{at}' must be an object with 'id' and 'scale', got {}",
                    type_name(entry)
                ),
            ));
        };
        let f = Fields::nested(o, at.clone());
        let id_name = f.name("id");
        let id = f.int("id", 0, i64::MAX)?.ok_or_else(|| {
            ApiError::invalid(id_name.clone(), format!("'{id_name}' is required"))
        })?;
        let id = usize::try_from(id).unwrap_or(usize::MAX);
        if id >= n {
            let loaded = match n {
                0 => "no LoRA adapters are loaded (serve --lora)".to_string(),
                n => format!("the loaded adapters have ids 0 to {}", n - 1),
            };
            return Err(ApiError::invalid(
                id_name.clone(),
                format!("'{id_name}' = {id} is not a LoRA adapter id: {loaded}"),
            ));
        }
        if std::mem::replace(&mut seen[id], true) {
            return Err(ApiError::invalid(
                id_name.clone(),
                format!("'{id_name}': adapter {id} is listed twice"),
            ));
        }
        let scale_name = f.name("scale");
        let scale = f
            .number("scale", -MAX_SCALE, false, MAX_SCALE)?
            .ok_or_else(|| {
                ApiError::invalid(scale_name.clone(), format!("'{scale_name}' is required"))
            })?;
        scales[id] = scale as f32;
    }
    Ok(scales)
}

/// A request's `lora` field: `None` when absent, `null` or empty (the
/// defaults apply).
pub fn parse_request(f: &Fields<'_>, st: &AppState) -> ApiResult<Option<Vec<f32>>> {
    let name = f.name("lora");
    match f.get("lora") {
        None => Ok(None),
        Some(Value::Array(a)) if a.is_empty() => Ok(None),
        Some(Value::Array(a)) => parse_list(a, &name, st.lora.len()).map(Some),
        Some(v) => Err(ApiError::invalid(
            name.clone(),
            format!(
                "'{name}' must be an array of {{\"id\", \"scale\"}} objects, got {}",
                type_name(v)
            ),
        )),
    }
}

/// `GET /lora-adapters`: `[{id, path, scale}]` with the default scales.
pub async fn list(State(st): State<Arc<AppState>>) -> Json<Value> {
    let scales = st.lora.defaults();
    let out: Vec<Value> = st
        .lora
        .adapters
        .iter()
        .zip(scales)
        .enumerate()
        .map(|(id, (a, scale))| json!({"id": id, "path": a.label, "scale": scale}))
        .collect();
    Json(Value::Array(out))
}

/// `POST /lora-adapters`: a body `[{id, scale}]` becomes the default
/// scales (unlisted adapters: 0); requests already running keep theirs.
pub async fn set_defaults(State(st): State<Arc<AppState>>, body: Bytes) -> ApiResult<Json<Value>> {
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
            .code("invalid_json")
    })?;
    let Value::Array(list) = v else {
        return Err(ApiError::bad_request(format!(
            "the request body must be an array of {{\"id\", \"scale\"}} objects, got {}",
            type_name(&v)
        )));
    };
    let scales = parse_list(&list, "", st.lora.len())?;
    *st.lora.defaults.write().unwrap_or_else(|e| e.into_inner()) = scales;
    Ok(Json(json!({"success": true})))
}

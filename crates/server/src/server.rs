//! The router, API-key check, loading gate and graceful shutdown.

use crate::body::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{anthropic, chat, completions, embeddings, metrics, misc, responses};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;

/// How long in-flight requests may run on after a shutdown signal; then
/// they are cancelled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long cancelled requests get to end before the server stops anyway.
pub const SHUTDOWN_HARD: Duration = Duration::from_secs(3);

/// The full API for a loaded model.
pub fn app(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/responses", post(responses::responses))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(misc::models))
        .route("/v1/models/{id}", get(misc::model))
        .route("/tokenize", post(misc::tokenize))
        .route("/detokenize", post(misc::detokenize))
        .route(
            "/lora-adapters",
            get(crate::lora::list).post(crate::lora::set_defaults),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    let open = Router::new()
        .route("/", get(crate::webui::index))
        .route("/health", get(misc::health))
        .route("/metrics", get(metrics::render));
    let router = protected
        .merge(open)
        .fallback(misc::not_found)
        .method_not_allowed_fallback(misc::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(metrics::count_requests));
    // CORS outside the API-key check: preflights carry no credentials.
    let router = match crate::cors::layer(&state.cors) {
        Some(cors) => router.layer(cors).layer(middleware::from_fn_with_state(
            state.clone(),
            crate::cors::guard,
        )),
        None => router,
    };
    router.with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("internal error: the request handler panicked").into_response()
}

/// `Authorization: Bearer KEY` (or Anthropic's `x-api-key: KEY`) when the
/// server has an API key.
async fn auth(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = &st.api_key else {
        return next.run(req).await;
    };
    let headers = req.headers();
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let anthropic = req.uri().path() == "/v1/messages";
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), key.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("Incorrect API key provided", anthropic),
        None => unauthorized(
            "Missing API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'",
            anthropic,
        ),
    }
}

fn unauthorized(msg: &str, anthropic: bool) -> Response {
    let e = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", msg)
        .code("invalid_api_key");
    let mut r = if anthropic {
        anthropic::error_response(e)
    } else {
        e.into_response()
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A router that answers `/health` with 503 `{"status":"loading"}` (and
/// everything else with 503) until `slot` holds the app, then forwards
/// every request to it.
pub fn gate(slot: Arc<OnceLock<Router>>) -> Router {
    Router::new().fallback(move |req: Request| {
        let slot = slot.clone();
        async move {
            match slot.get() {
                Some(app) => match app.clone().oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                None if req.uri().path() == "/health" => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({"status": "loading"})),
                )
                    .into_response(),
                None => {
                    let mut e = ApiError::unavailable("the model is loading", "model_loading");
                    e.retry_after = Some(1);
                    e.into_response()
                }
            }
        }
    })
}

/// Serves on `listener` at once: `/health` answers 503 `loading` while
/// `load` runs on a blocking thread, then the full [`app`]. When
/// `shutdown` completes, new requests are refused, in-flight ones get
/// [`SHUTDOWN_GRACE`] to finish, then the engine cancels them and the
/// function returns within [`SHUTDOWN_HARD`] more.
pub async fn serve<L, S>(
    listener: tokio::net::TcpListener,
    load: L,
    shutdown: S,
) -> Result<(), String>
where
    L: FnOnce() -> Result<AppState, String> + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    let slot = Arc::new(OnceLock::new());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, gate(slot.clone())).with_graceful_shutdown(async move {
        let _ = stop_rx.await;
    });
    let mut server = tokio::spawn(std::future::IntoFuture::into_future(server));
    let loading = tokio::task::spawn_blocking(load);
    tokio::pin!(shutdown);
    let state = tokio::select! {
        r = loading => match r {
            Ok(Ok(s)) => Some(Arc::new(s)),
            Ok(Err(e)) => {
                let _ = stop_tx.send(());
                let _ = tokio::time::timeout(SHUTDOWN_HARD, &mut server).await;
                return Err(e);
            }
            Err(e) => {
                let _ = stop_tx.send(());
                let _ = tokio::time::timeout(SHUTDOWN_HARD, &mut server).await;
                return Err(format!("loading the model failed: {e}"));
            }
        },
        () = &mut shutdown => None,
    };
    let Some(state) = state else {
        // Signalled while loading: nothing is in flight.
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(SHUTDOWN_HARD, &mut server).await;
        return Ok(());
    };
    let _ = slot.set(app(state.clone()));
    // Histogram samples are folded into buckets at each scrape; without
    // scrapes, do it now and then so they do not pile up.
    let upkeep = {
        let handle = state.metrics.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(5));
            loop {
                t.tick().await;
                handle.run_upkeep();
            }
        })
    };
    tokio::select! {
        () = &mut shutdown => {}
        r = &mut server => {
            upkeep.abort();
            return match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("the server failed: {e}")),
                Err(e) => Err(format!("the server failed: {e}")),
            };
        }
    }
    state.engine.stop_accepting();
    let _ = stop_tx.send(());
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
        .await
        .is_err()
    {
        state.engine.cancel_all();
        if tokio::time::timeout(SHUTDOWN_HARD, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
    upkeep.abort();
    Ok(())
}

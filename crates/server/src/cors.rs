//! `--cors ORIGIN` (repeatable; `*` for any): browsers on those origins may
//! call the API. tower-http's `CorsLayer` answers their preflights and adds
//! the `Access-Control-Allow-*` headers; a preflight from any other origin
//! gets a 403 here instead of an answer a browser would have to interpret.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// The CORS layer for the configured origins (`None`: no `--cors`).
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(AllowHeaders::mirror_request())
            .max_age(Duration::from_secs(600)),
    )
}

/// Refuses a preflight (`OPTIONS` with `Access-Control-Request-Method`)
/// whose `Origin` is not allowed.
pub async fn guard(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight && !st.cors.iter().any(|o| o == "*") {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !st.cors.iter().any(|o| o == origin) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!("the origin '{origin}' may not call this server (see --cors)"),
            )
            .code("cors_origin_not_allowed")
            .into_response();
        }
    }
    next.run(req).await
}

//! The web chat page at `/`: one static HTML file (inline CSS and JS, no
//! external resources) that talks to `/v1/models` and streams
//! `/v1/chat/completions`. The page itself needs no API key; it sends the
//! one typed into its key field (kept in the browser's localStorage).

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("webui/index.html");

/// The page may run only its own inline script and style, and talk only to
/// this server.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
}

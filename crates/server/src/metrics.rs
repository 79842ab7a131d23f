//! Prometheus: one recorder per process (installed on first use), the
//! request counter middleware, and `/metrics`.

use crate::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};

/// Seconds, for the time-to-first-token histogram.
const TTFT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Seconds, for the time-per-output-token histogram.
const TPOT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process's Prometheus handle: installs the global recorder the first
/// time (later calls, e.g. several apps in one test process, share it).
/// If another recorder was installed already, the handle renders an empty
/// page.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full("shohin_time_to_first_token_seconds".into()),
                        TTFT_BUCKETS,
                    )?
                    .set_buckets_for_metric(
                        Matcher::Full("shohin_time_per_output_token_seconds".into()),
                        TPOT_BUCKETS,
                    )
            };
            let Ok(b) = builder() else {
                unreachable!("the bucket lists are constant and non-empty")
            };
            let recorder = b.build_recorder();
            let handle = recorder.handle();
            // Fails only if some other recorder is installed already.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "shohin_requests_total",
        "HTTP requests answered, by endpoint and status"
    );
    metrics::describe_counter!("shohin_prompt_tokens_total", "Prompt tokens submitted");
    metrics::describe_counter!(
        "shohin_prompt_tokens_cached_total",
        "Prompt tokens taken from the prefix cache"
    );
    metrics::describe_counter!("shohin_generated_tokens_total", "Tokens generated");
    metrics::describe_counter!(
        "shohin_draft_tokens_total",
        "Draft tokens verified (speculative decoding, serve --lookup)"
    );
    metrics::describe_counter!(
        "shohin_draft_accepted_total",
        "Draft tokens accepted (speculative decoding)"
    );
    metrics::describe_gauge!("shohin_queue_depth", "Requests waiting for a slot");
    metrics::describe_gauge!("shohin_active_slots", "Slots running a request");
    metrics::describe_gauge!(
        "shohin_kv_cells_used",
        "KV positions held by running requests"
    );
    metrics::describe_gauge!(
        "shohin_kv_cells_cached",
        "KV positions kept for prefix reuse"
    );
    metrics::describe_gauge!(
        "shohin_tokens_per_second",
        "Generation speed of the last finished request"
    );
    metrics::describe_histogram!(
        "shohin_time_to_first_token_seconds",
        "From submission to the first sampled token"
    );
    metrics::describe_histogram!(
        "shohin_time_per_output_token_seconds",
        "Mean time between generated tokens, per request"
    );
}

/// Counts every answered request as `shohin_requests_total{endpoint,status}`
/// (`endpoint` is the route, `other` for unknown paths).
pub async fn count_requests(req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("shohin_requests_total", "endpoint" => endpoint, "status" => status)
        .increment(1);
    resp
}

/// `GET /metrics`: the Prometheus text format, gauges refreshed from the
/// engine first.
pub async fn render(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let s = st.engine.stats();
    metrics::gauge!("shohin_queue_depth").set(s.queued as f64);
    metrics::gauge!("shohin_active_slots").set(s.active_slots as f64);
    metrics::gauge!("shohin_kv_cells_used").set(s.kv_cells_used as f64);
    metrics::gauge!("shohin_kv_cells_cached").set(s.kv_cells_cached as f64);
    metrics::gauge!("shohin_slots_total").set(s.n_slots as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

//! OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`,
//! for every failure the server reports, with its HTTP status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use shohin_engine::sampler::SamplerError;
use shohin_engine::scheduler::SubmitError;

/// An error answered as OpenAI's JSON error object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`,
    /// `not_found_error`, `rate_limit_error`, `server_error`, ...
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request_error` about the request field `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message.into(),
        )
        .param(param)
    }

    /// 400 `invalid_request_error` about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    pub fn unavailable(message: impl Into<String>, code: &'static str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message).code(code)
    }

    pub fn param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }

    pub fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }

    /// A refused submission; `prompt_param` names the request's prompt
    /// field (`messages`, `prompt`, `input`).
    pub fn from_submit(e: SubmitError, prompt_param: &str) -> Self {
        let msg = e.to_string();
        match e {
            SubmitError::EmptyPrompt => Self::invalid(prompt_param, msg),
            SubmitError::PromptTooLong { .. } => {
                Self::invalid(prompt_param, msg).code("context_length_exceeded")
            }
            SubmitError::TooManyChoices { .. } => Self::invalid("n", msg),
            SubmitError::TokenOutOfVocab { .. } => Self::invalid(prompt_param, msg),
            SubmitError::Sampler(SamplerError::OutOfRange { field, .. }) => {
                Self::invalid(sampler_param(field), msg)
            }
            SubmitError::QueueFull { .. } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    format!("the server is busy: {msg}; retry later"),
                )
                .code("rate_limit_exceeded");
                e.retry_after = Some(1);
                e
            }
            SubmitError::Lora { .. } => Self::invalid("lora", msg),
            SubmitError::ShuttingDown => Self::unavailable(msg, "shutting_down"),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// The request field of a [`shohin_engine::sampler::SamplerConfig`] field.
fn sampler_param(field: &str) -> &str {
    match field {
        "temperature" => "temperature",
        "top_k" => "top_k",
        "top_p" => "top_p",
        "min_p" => "min_p",
        "repeat_penalty" => "repeat_penalty",
        "presence_penalty" => "presence_penalty",
        "frequency_penalty" => "frequency_penalty",
        other => other,
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// Handlers' result type.
pub type ApiResult<T> = Result<T, ApiError>;

//! The JSON body extractor (every rejection is an OpenAI error: 413 for a
//! body over the limit, 400 for invalid UTF-8, malformed JSON or a body
//! that is not an object) and typed access to its fields, each failure
//! naming the field as OpenAI's `param`.

use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// A request body that is a JSON object.
#[derive(Debug)]
pub struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "the request body is larger than {} MiB",
                    MAX_BODY_BYTES >> 20
                ),
            )
            .code("request_too_large")
        };
        // Refuse an announced length at once, without reading (or waiting
        // for) any of the body.
        let announced = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(format!(
                    "could not read the request body: {}",
                    r.body_text()
                ))
            }
        })?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// Parses a request body that must be one JSON object.
pub fn parse_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid UTF-8: {e}"))
            .code("invalid_utf8")
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; expected a JSON object",
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
                .code("invalid_json"),
        ),
    }
}

/// JSON type names for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed, validated access to an object's fields. A field set to `null`
/// counts as absent.
pub struct Fields<'a> {
    pub map: &'a Map<String, Value>,
    /// Prefix of the `param` names (`""` at the top level).
    pub prefix: String,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Self {
            map,
            prefix: String::new(),
        }
    }

    pub fn nested(map: &'a Map<String, Value>, prefix: impl Into<String>) -> Self {
        Self {
            map,
            prefix: prefix.into(),
        }
    }

    /// The full `param` name of `key`.
    pub fn name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, v: &Value, expected: &str) -> ApiError {
        ApiError::invalid(
            self.name(key),
            format!(
                "'{}' must be {expected}, got {}",
                self.name(key),
                type_name(v)
            ),
        )
    }

    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, v, "a boolean")),
        }
    }

    pub fn str(&self, key: &str) -> ApiResult<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, v, "a string")),
        }
    }

    pub fn object(&self, key: &str) -> ApiResult<Option<&'a Map<String, Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.wrong_type(key, v, "an object")),
        }
    }

    /// A finite number in `[lo, hi]` (`lo` excluded when `lo_open`).
    pub fn number(&self, key: &str, lo: f64, lo_open: bool, hi: f64) -> ApiResult<Option<f64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let x = v
            .as_f64()
            .ok_or_else(|| self.wrong_type(key, v, "a number"))?;
        let low_ok = if lo_open { x > lo } else { x >= lo };
        if !(x.is_finite() && low_ok && x <= hi) {
            let open = if lo_open { "(" } else { "[" };
            return Err(ApiError::invalid(
                self.name(key),
                format!(
                    "'{}' = {x} is out of range: must be in {open}{lo}, {hi}]",
                    self.name(key)
                ),
            ));
        }
        Ok(Some(x))
    }

    /// An integer in `[lo, hi]`.
    pub fn int(&self, key: &str, lo: i64, hi: i64) -> ApiResult<Option<i64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let out_of_range = || {
            ApiError::invalid(
                self.name(key),
                format!(
                    "'{}' = {v} is out of range: must be an integer from {lo} to {hi}",
                    self.name(key)
                ),
            )
        };
        let x = match v {
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i,
                (None, Some(_), _) => return Err(out_of_range()),
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
                (None, None, Some(f)) if f.fract() == 0.0 || !f.is_finite() => {
                    return Err(out_of_range())
                }
                _ => return Err(self.wrong_type(key, v, "an integer")),
            },
            _ => return Err(self.wrong_type(key, v, "an integer")),
        };
        if x < lo || x > hi {
            return Err(out_of_range());
        }
        Ok(Some(x))
    }
}

/// A token id from a JSON value (`param` names it in errors).
pub fn token_id(v: &Value, param: impl Fn() -> String) -> ApiResult<u32> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| {
            let p = param();
            ApiError::invalid(
                p.clone(),
                format!("'{p}' must be a token id (an integer >= 0), got {v}"),
            )
        })
}

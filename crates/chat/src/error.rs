//! Errors from compiling or rendering a chat template.

use std::error::Error as _;

/// Why a chat template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The template text is not valid Jinja.
    #[error("chat template syntax error at line {line}: {reason}")]
    Syntax {
        /// 1-based line in the template source (0 if unknown).
        line: usize,
        /// What the parser objected to.
        reason: String,
    },
    /// The template called `raise_exception(message)`, the Hugging Face way of
    /// rejecting a conversation (e.g. "Conversation roles must alternate").
    #[error("chat template raised an exception at line {line}: {message}")]
    Raised {
        /// 1-based line of the `raise_exception` call (0 if unknown).
        line: usize,
        /// The message passed by the template.
        message: String,
    },
    /// Any other failure while rendering (unknown filter, type error, fuel
    /// exhausted, …).
    #[error("chat template render error at line {line}: {reason}")]
    Render {
        /// 1-based line in the template source (0 if unknown).
        line: usize,
        /// minijinja's description of the failure.
        reason: String,
    },
}

/// Marker attached (as `source`) to the error produced by `raise_exception`, so
/// that [`ChatError::Raised`] can be told apart from engine errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RaisedByTemplate(pub(crate) String);

impl ChatError {
    pub(crate) fn from_compile(err: minijinja::Error) -> Self {
        ChatError::Syntax {
            line: err.line().unwrap_or(0),
            reason: reason_of(&err),
        }
    }

    pub(crate) fn from_render(err: minijinja::Error) -> Self {
        let line = err.line().unwrap_or(0);
        let mut source = err.source();
        while let Some(s) = source {
            if let Some(raised) = s.downcast_ref::<RaisedByTemplate>() {
                return ChatError::Raised {
                    line,
                    message: raised.0.clone(),
                };
            }
            source = s.source();
        }
        ChatError::Render {
            line,
            reason: reason_of(&err),
        }
    }
}

/// "kind: detail" without minijinja's "(in template:line)" suffix, which the
/// variants carry as a field instead.
fn reason_of(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

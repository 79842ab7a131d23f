//! What can go wrong while resolving, downloading or caching a file.

use std::path::PathBuf;

/// Every error names the repository, file or path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("invalid model reference `{spec}`: {why} (expected owner/name[:FILE])")]
    BadRef { spec: String, why: String },
    #[error(
        "{repo} is a gated repository: accept its terms on {url} while logged in, \
         then set HF_TOKEN to an access token of that account"
    )]
    Gated { repo: String, url: String },
    #[error(
        "repository {repo} not found on {endpoint} (check the name; for a private repository \
         set HF_TOKEN)"
    )]
    RepoNotFound { repo: String, endpoint: String },
    #[error("file {file} not found in {repo} at revision {revision}")]
    EntryNotFound {
        repo: String,
        file: String,
        revision: String,
    },
    #[error("revision {revision} not found in {repo}")]
    RevisionNotFound { repo: String, revision: String },
    #[error("{url}: HTTP {status}{detail}")]
    Http {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("could not reach {url}: {message}")]
    Network { url: String, message: String },
    #[error("{what} is not in the cache ({cache}) and {why}")]
    NotCached {
        what: String,
        cache: PathBuf,
        why: String,
    },
    #[error("{repo} has no .gguf file at revision {revision}")]
    NoGguf { repo: String, revision: String },
    #[error(
        "{repo} has several .gguf files; pick one with {repo}:FILE:\n  {}",
        files.join("\n  ")
    )]
    SeveralGguf { repo: String, files: Vec<String> },
    #[error(
        "sha256 mismatch for {what}: the hub says {expected}, the download is {actual}; \
         the partial file was deleted"
    )]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: the hub says {expected} bytes, got {actual}")]
    Size {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("downloading {what} failed after {attempts} attempts: {last}")]
    Download {
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("{what} is not in the cache ({cache})")]
    NotInCache { what: String, cache: PathBuf },
    #[error("no cache directory: set SHOHIN_CACHE (or HOME / XDG_CACHE_HOME)")]
    NoCacheDir,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `map_err` helper: an I/O error on `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.into();
    move |source| HubError::Io { path, source }
}

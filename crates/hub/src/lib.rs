//! A Hugging Face Hub client for shohin: finds a file of a model repository,
//! downloads it once into a local cache (resumable, sha256-checked) and
//! returns its path; a cached file is used without any request, so it works
//! offline.
//!
//! The protocol is the hub's own, as `huggingface_hub` speaks it:
//!
//! * `GET {endpoint}/api/models/{repo}/revision/{rev}` lists a revision's
//!   files (`siblings[].rfilename`) and its commit (`sha`);
//! * `HEAD {endpoint}/{repo}/resolve/{rev}/{file}`, redirects not followed,
//!   gives the commit (`X-Repo-Commit`), the file's sha256 for LFS files
//!   (`X-Linked-Etag`, else `ETag`), its size (`X-Linked-Size`, else
//!   `Content-Length`) and, in a 3xx `Location`, the storage URL;
//! * errors are 401 / 403 / 404 with `X-Error-Code` (`GatedRepo`,
//!   `RepoNotFound`, `EntryNotFound`, `RevisionNotFound`).
//!
//! The download goes to `{file}.part`; a cut connection is resumed with
//! `Range: bytes=N-` (a 200 answer restarts from zero), a few times within
//! the run, and a later run resumes the same `.part`. The whole file's
//! sha256 is checked against the hub's before it is moved into place; a
//! mismatch deletes the partial file. See [`cache`] for the layout.

pub mod cache;
mod download;
pub mod error;
mod model_ref;
mod url;

pub use cache::{Cache, CachedFile};
pub use error::HubError;
pub use model_ref::ModelRef;
use url::{absolute, encode, same_origin};

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// The sha256 of `data` in lowercase hex, as the hub's ETags spell it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    download::hex(&sha2::Sha256::digest(data))
}

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and how to talk to the hub; [`HubConfig::from_env`] reads the
/// usual variables, tests build one directly.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Base URL without a trailing slash (`$HF_ENDPOINT`).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer` to the endpoint (`$HF_TOKEN`).
    pub token: Option<String>,
    /// Cache root (`$SHOHIN_CACHE`, else `$XDG_CACHE_HOME/shohin`, else
    /// `~/.cache/shohin`).
    pub cache_dir: PathBuf,
    /// Never make a request: only cached files (`$HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Failed download attempts in a row (without progress) retried.
    pub retries: u32,
    /// Pause before a retry.
    pub retry_delay: Duration,
    /// Connect and read timeout.
    pub timeout: Duration,
}

impl HubConfig {
    /// The public hub, no token, online, no progress bar.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        HubConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            cache_dir: cache_dir.into(),
            offline: false,
            progress: false,
            retries: 5,
            retry_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(60),
        }
    }

    /// `$SHOHIN_CACHE` / `$XDG_CACHE_HOME` / `$HOME`, `$HF_ENDPOINT`,
    /// `$HF_TOKEN`, `$HF_HUB_OFFLINE`; the bar only when stderr is a terminal.
    pub fn from_env() -> Result<Self, HubError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let cache_dir = if let Some(d) = var("SHOHIN_CACHE") {
            PathBuf::from(d)
        } else if let Some(d) = var("XDG_CACHE_HOME") {
            PathBuf::from(d).join("shohin")
        } else if let Some(h) = var("HOME") {
            PathBuf::from(h).join(".cache").join("shohin")
        } else {
            return Err(HubError::NoCacheDir);
        };
        let mut c = HubConfig::new(cache_dir);
        if let Some(e) = var("HF_ENDPOINT") {
            c.endpoint = e.trim().trim_end_matches('/').to_string();
        }
        c.token = var("HF_TOKEN").map(|t| t.trim().to_string());
        c.offline = var("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        });
        c.progress = std::io::stderr().is_terminal();
        Ok(c)
    }
}

/// A revision's listing from the JSON API.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RepoInfo {
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sibling {
    pub rfilename: String,
}

/// What `HEAD .../resolve/...` says about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub commit: Option<String>,
    /// The ETag without quotes and `W/`: the sha256 for LFS files.
    pub etag: Option<String>,
    pub size: Option<u64>,
    /// Where to GET the bytes (the storage URL after a redirect).
    pub url: String,
}

impl FileMeta {
    /// The expected sha256 when the ETag is one (64 hex digits).
    pub fn sha256(&self) -> Option<String> {
        self.etag
            .as_ref()
            .filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|e| e.to_ascii_lowercase())
    }
}

/// The client: a configuration, a cache and two HTTP agents.
pub struct Hub {
    cfg: HubConfig,
    cache: Cache,
    /// Redirects not followed (metadata), as the hub's clients do.
    meta_agent: ureq::Agent,
    /// Redirects followed (the storage URL may redirect again).
    get_agent: ureq::Agent,
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Self {
        let build = |redirects: u32| {
            ureq::AgentBuilder::new()
                .redirects(redirects)
                .timeout_connect(cfg.timeout)
                .timeout_read(cfg.timeout)
                .user_agent(concat!("shohin/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Hub {
            cache: Cache::new(&cfg.cache_dir),
            meta_agent: build(0),
            get_agent: build(5),
            cfg,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The local path of `r`: from the cache without any request, else
    /// resolved and downloaded. Offline (or when the hub cannot be reached)
    /// an uncached file is an error naming it.
    pub fn pull(&self, r: &ModelRef) -> Result<PathBuf, HubError> {
        if let Some(p) = self.cache.lookup(r) {
            return Ok(p);
        }
        let not_cached = |why: String| HubError::NotCached {
            what: r.to_string(),
            cache: self.cache.root().to_path_buf(),
            why,
        };
        if self.cfg.offline {
            return Err(not_cached(
                "offline mode is on (HF_HUB_OFFLINE): it cannot be downloaded".to_string(),
            ));
        }
        match self.pull_online(r) {
            Err(HubError::Network { url, message }) => Err(not_cached(format!(
                "the hub could not be reached ({url}: {message})"
            ))),
            other => other,
        }
    }

    fn pull_online(&self, r: &ModelRef) -> Result<PathBuf, HubError> {
        let (file, api_commit) = match &r.file {
            Some(f) => (f.clone(), None),
            None => {
                let info = self.repo_info(&r.repo, &r.revision)?;
                (pick_gguf(r, &info)?, info.sha)
            }
        };
        let meta = self.file_meta(&r.repo, &r.revision, &file)?;
        let commit = meta
            .commit
            .clone()
            .or(api_commit)
            .unwrap_or_else(|| r.revision.clone());
        let dest = self.cache.snapshot_dir(&r.repo, &commit).join(&file);
        if !dest.is_file() {
            let what = format!("{}:{file}", r.repo);
            download::download(self, &meta, &dest, &what)?;
        }
        self.cache.write_ref(&r.repo, &r.revision, &commit)?;
        Ok(dest)
    }

    /// `GET /api/models/{repo}/revision/{rev}`.
    pub fn repo_info(&self, repo: &str, revision: &str) -> Result<RepoInfo, HubError> {
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.cfg.endpoint,
            encode(revision, false)
        );
        let resp = self.call(self.meta_agent.get(&url), &url, repo, None, revision)?;
        let body = resp.into_string().map_err(|e| HubError::Network {
            url: url.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_str(&body).map_err(|e| HubError::Http {
            url,
            status: 200,
            detail: format!(": not the hub's JSON ({e})"),
        })
    }

    /// `HEAD /{repo}/resolve/{rev}/{file}` without following redirects.
    pub fn file_meta(&self, repo: &str, revision: &str, file: &str) -> Result<FileMeta, HubError> {
        let url = self.resolve_url(repo, revision, file);
        let resp = self.call(self.meta_agent.head(&url), &url, repo, Some(file), revision)?;
        let header = |k: &str| resp.header(k).map(|v| v.trim().to_string());
        let etag = header("X-Linked-Etag")
            .or_else(|| header("ETag"))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
            .filter(|e| !e.is_empty());
        let size = header("X-Linked-Size")
            .or_else(|| header("Content-Length"))
            .and_then(|s| s.parse().ok());
        let download_url = if (300..400).contains(&resp.status()) {
            let loc = header("Location").ok_or_else(|| HubError::Http {
                url: url.clone(),
                status: resp.status(),
                detail: ": a redirect without Location".to_string(),
            })?;
            absolute(&self.cfg.endpoint, &loc)
        } else {
            url.clone()
        };
        Ok(FileMeta {
            commit: header("X-Repo-Commit").filter(|c| !c.is_empty()),
            etag,
            size,
            url: download_url,
        })
    }

    fn resolve_url(&self, repo: &str, revision: &str, file: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{}",
            self.cfg.endpoint,
            encode(revision, false),
            encode(file, true)
        )
    }

    /// Adds the token when `url` is on the endpoint.
    fn authorize(&self, req: ureq::Request, url: &str) -> ureq::Request {
        match &self.cfg.token {
            Some(t) if same_origin(url, &self.cfg.endpoint) => {
                req.set("Authorization", &format!("Bearer {t}"))
            }
            _ => req,
        }
    }

    /// Sends a metadata request; HTTP errors become the hub's errors.
    fn call(
        &self,
        req: ureq::Request,
        url: &str,
        repo: &str,
        file: Option<&str>,
        revision: &str,
    ) -> Result<ureq::Response, HubError> {
        match self.authorize(req, url).call() {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(status, resp)) => {
                Err(self.status_error(status, &resp, url, repo, file, revision))
            }
            Err(ureq::Error::Transport(t)) => Err(HubError::Network {
                url: url.to_string(),
                message: transport_message(url, &t),
            }),
        }
    }

    fn status_error(
        &self,
        status: u16,
        resp: &ureq::Response,
        url: &str,
        repo: &str,
        file: Option<&str>,
        revision: &str,
    ) -> HubError {
        let code = resp.header("X-Error-Code").unwrap_or("");
        let repo_not_found = || HubError::RepoNotFound {
            repo: repo.to_string(),
            endpoint: self.cfg.endpoint.clone(),
        };
        match (code, status) {
            ("GatedRepo", _) => HubError::Gated {
                repo: repo.to_string(),
                url: format!("{}/{repo}", self.cfg.endpoint),
            },
            ("RepoNotFound", _) => repo_not_found(),
            ("RevisionNotFound", _) => HubError::RevisionNotFound {
                repo: repo.to_string(),
                revision: revision.to_string(),
            },
            ("EntryNotFound", _) | ("", 404) if file.is_some() => HubError::EntryNotFound {
                repo: repo.to_string(),
                file: file.unwrap_or_default().to_string(),
                revision: revision.to_string(),
            },
            ("", 404) => repo_not_found(),
            _ => {
                let msg = resp.header("X-Error-Message").unwrap_or("");
                let mut detail = String::new();
                if !code.is_empty() {
                    detail.push_str(&format!(" {code}"));
                }
                if !msg.is_empty() {
                    detail.push_str(&format!(": {msg}"));
                }
                if status == 401 || status == 403 {
                    detail.push_str(" (a private or gated repository needs HF_TOKEN)");
                }
                HubError::Http {
                    url: url.to_string(),
                    status,
                    detail,
                }
            }
        }
    }
}

/// ureq's message without the URL it starts with.
pub(crate) fn transport_message(url: &str, t: &ureq::Transport) -> String {
    let m = t.to_string();
    m.strip_prefix(&format!("{url}: "))
        .map(str::to_string)
        .unwrap_or(m)
}

/// FILE when given, else the revision's only `.gguf`.
fn pick_gguf(r: &ModelRef, info: &RepoInfo) -> Result<String, HubError> {
    let mut ggufs: Vec<String> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.clone())
        .filter(|f| cache::is_gguf(f))
        .collect();
    ggufs.sort();
    match ggufs.len() {
        0 => Err(HubError::NoGguf {
            repo: r.repo.clone(),
            revision: r.revision.clone(),
        }),
        1 => {
            let f = ggufs.pop().expect("one");
            // The listing comes from the server: check it as a user's FILE.
            ModelRef::parse(&format!("{}:{f}", r.repo))?;
            Ok(f)
        }
        _ => Err(HubError::SeveralGguf {
            repo: r.repo.clone(),
            files: ggufs,
        }),
    }
}

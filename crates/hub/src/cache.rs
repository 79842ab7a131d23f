//! The on-disk cache. Layout, under the cache directory:
//!
//! ```text
//! models/{owner}/{name}/refs/{revision}            the commit `revision` resolved to (text)
//! models/{owner}/{name}/snapshots/{commit}/{file}  a downloaded file (FILE may hold folders)
//! models/{owner}/{name}/snapshots/{commit}/{file}.part   while downloading (resumed later)
//! models/{owner}/{name}/snapshots/{commit}/{file}.lock   held while one process downloads
//! ```
//!
//! A file is only ever moved to its final path after its sha256 was checked,
//! so anything at a final path is complete. A lookup reads `refs/{revision}`
//! (or takes a 40-hex revision as the commit) and needs no network at all.

use crate::error::{io_err, HubError};
use crate::ModelRef;
use std::fs;
use std::path::{Path, PathBuf};

/// One cached file, as `shohin list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    pub repo: String,
    pub file: String,
    pub commit: String,
    pub size: u64,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A commit or revision as one safe path component.
pub(crate) fn component(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    pub(crate) fn repo_dir(&self, repo: &str) -> PathBuf {
        // `repo` was validated by ModelRef::parse: owner/name, no `..`.
        self.models().join(repo)
    }

    pub(crate) fn snapshot_dir(&self, repo: &str, commit: &str) -> PathBuf {
        self.repo_dir(repo)
            .join("snapshots")
            .join(component(commit))
    }

    fn ref_path(&self, repo: &str, revision: &str) -> PathBuf {
        self.repo_dir(repo).join("refs").join(component(revision))
    }

    /// The commit a revision resolved to when it was last pulled.
    pub(crate) fn commit_of(&self, repo: &str, revision: &str) -> Option<String> {
        if is_commit(revision) {
            return Some(revision.to_ascii_lowercase());
        }
        let s = fs::read_to_string(self.ref_path(repo, revision)).ok()?;
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    }

    pub(crate) fn write_ref(
        &self,
        repo: &str,
        revision: &str,
        commit: &str,
    ) -> Result<(), HubError> {
        if is_commit(revision) {
            return Ok(());
        }
        let p = self.ref_path(repo, revision);
        if let Some(dir) = p.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        fs::write(&p, commit).map_err(io_err(&p))
    }

    /// The cached file for `r` without any request: the named file, or
    /// without FILE the snapshot's only `.gguf`.
    pub fn lookup(&self, r: &ModelRef) -> Option<PathBuf> {
        let commit = self.commit_of(&r.repo, &r.revision)?;
        let snap = self.snapshot_dir(&r.repo, &commit);
        match &r.file {
            Some(f) => {
                let p = snap.join(f);
                p.is_file().then_some(p)
            }
            None => {
                let mut ggufs: Vec<String> = files_under(&snap)
                    .into_iter()
                    .filter(|(f, _)| is_gguf(f))
                    .map(|(f, _)| f)
                    .collect();
                if ggufs.len() == 1 {
                    Some(snap.join(ggufs.pop().expect("one")))
                } else {
                    None
                }
            }
        }
    }

    /// Every complete cached file, sorted by repository and file.
    pub fn list(&self) -> Vec<CachedFile> {
        let mut out = Vec::new();
        for owner in dir_names(&self.models()) {
            for name in dir_names(&self.models().join(&owner)) {
                let repo = format!("{owner}/{name}");
                let snaps = self.repo_dir(&repo).join("snapshots");
                for commit in dir_names(&snaps) {
                    for (file, size) in files_under(&snaps.join(&commit)) {
                        out.push(CachedFile {
                            path: snaps.join(&commit).join(&file),
                            repo: repo.clone(),
                            file,
                            commit: commit.clone(),
                            size,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.repo, &a.file, &a.commit).cmp(&(&b.repo, &b.file, &b.commit)));
        out
    }

    /// Removes a repository (no FILE) or one file of it from every cached
    /// snapshot, partial downloads included. Returns what was removed; an
    /// error when nothing matched.
    pub fn remove(&self, r: &ModelRef) -> Result<Vec<PathBuf>, HubError> {
        let not_found = || HubError::NotInCache {
            what: r.to_string(),
            cache: self.root.clone(),
        };
        let repo_dir = self.repo_dir(&r.repo);
        let snaps = repo_dir.join("snapshots");
        let mut removed = Vec::new();
        match &r.file {
            None => {
                if !repo_dir.is_dir() {
                    return Err(not_found());
                }
                removed.extend(
                    self.list()
                        .into_iter()
                        .filter(|c| c.repo == r.repo)
                        .map(|c| c.path),
                );
                fs::remove_dir_all(&repo_dir).map_err(io_err(&repo_dir))?;
            }
            Some(f) => {
                for commit in dir_names(&snaps) {
                    let p = snaps.join(&commit).join(f);
                    if p.is_file() {
                        fs::remove_file(&p).map_err(io_err(&p))?;
                        removed.push(p.clone());
                    }
                    for extra in [part_path(&p), lock_path(&p)] {
                        if extra.is_file() {
                            fs::remove_file(&extra).map_err(io_err(&extra))?;
                        }
                    }
                    // Drop folders left empty, up to the snapshot.
                    let top = snaps.join(&commit);
                    let mut dir = p.parent().map(Path::to_path_buf);
                    while let Some(d) = dir {
                        if !d.starts_with(&top) || fs::remove_dir(&d).is_err() {
                            break;
                        }
                        dir = d.parent().map(Path::to_path_buf);
                    }
                }
                if removed.is_empty() {
                    return Err(not_found());
                }
                if dir_names(&snaps).is_empty() {
                    let _ = fs::remove_dir_all(&repo_dir);
                }
            }
        }
        // Remove the owner folder when it is now empty.
        if let Some(owner) = repo_dir.parent() {
            let _ = fs::remove_dir(owner);
        }
        Ok(removed)
    }
}

pub(crate) fn is_gguf(f: &str) -> bool {
    f.to_ascii_lowercase().ends_with(".gguf")
}

pub(crate) fn part_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

pub(crate) fn lock_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

fn dir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// Complete files under `dir` (not `.part`), as `/`-separated relative paths.
fn files_under(dir: &Path) -> Vec<(String, u64)> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path(), &rel, out),
                Ok(t) if t.is_file() && !name.ends_with(".part") && !name.ends_with(".lock") => {
                    out.push((rel, e.metadata().map(|m| m.len()).unwrap_or(0)));
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

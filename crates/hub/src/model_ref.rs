//! `owner/name[:FILE]` model references, checked before any request or
//! cache path is built from them.

use crate::HubError;

/// `owner/name[:FILE]` at a revision (default `main`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub repo: String,
    pub file: Option<String>,
    pub revision: String,
}

impl ModelRef {
    /// Parses `owner/name[:FILE]` (an `hf:` prefix is allowed).
    pub fn parse(spec: &str) -> Result<Self, HubError> {
        let bad = |why: &str| HubError::BadRef {
            spec: spec.to_string(),
            why: why.to_string(),
        };
        let s = spec.strip_prefix("hf:").unwrap_or(spec);
        let (repo, file) = match s.split_once(':') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() != 2 {
            return Err(bad("the repository must be owner/name"));
        }
        for p in &parts {
            if p.is_empty()
                || *p == "."
                || *p == ".."
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad(
                    "owner and name may hold only letters, digits, `-`, `_` and `.`",
                ));
            }
        }
        if let Some(f) = file {
            if f.is_empty()
                || f.starts_with('/')
                || f.contains('\\')
                || f.split('/').any(|c| {
                    c.is_empty()
                        || c == "."
                        || c == ".."
                        || c.ends_with(".part")
                        || c.ends_with(".lock")
                })
            {
                return Err(bad("FILE must be a relative path inside the repository"));
            }
        }
        Ok(ModelRef {
            repo: repo.to_string(),
            file: file.map(str::to_string),
            revision: "main".to_string(),
        })
    }

    pub fn with_revision(mut self, revision: &str) -> Result<Self, HubError> {
        if revision.is_empty()
            || revision.starts_with('/')
            || revision.split('/').any(|c| c.is_empty() || c == "..")
            || revision.chars().any(char::is_whitespace)
        {
            return Err(HubError::BadRef {
                spec: format!("{self}@{revision}"),
                why: "bad revision".to_string(),
            });
        }
        self.revision = revision.to_string();
        Ok(self)
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.repo)?;
        if let Some(file) = &self.file {
            write!(f, ":{file}")?;
        }
        if self.revision != "main" {
            write!(f, " (revision {})", self.revision)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_refs() {
        let r = ModelRef::parse("hf:prism-ml/Bonsai-1.7B-gguf:Bonsai-1.7B-Q1_0.gguf").unwrap();
        assert_eq!(r.repo, "prism-ml/Bonsai-1.7B-gguf");
        assert_eq!(r.file.as_deref(), Some("Bonsai-1.7B-Q1_0.gguf"));
        assert_eq!(r.revision, "main");
        assert_eq!(ModelRef::parse("a/b").unwrap().file, None);
        for bad in [
            "a", "a/b/c", "../b", "a/..", "a/b:", "a/b:../x", "a/b:/x", "a b/c",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
        assert!(ModelRef::parse("a/b")
            .unwrap()
            .with_revision("../x")
            .is_err());
    }
}

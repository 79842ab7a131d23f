//! URL pieces: percent-encoding of path parts, origins, and making a
//! redirect's `Location` absolute.

/// Percent-encodes a URL path part (keeping `/` when `keep_slash`).
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].find('/') {
        Some(i) => &url[..start + i],
        None => url,
    }
}

pub(crate) fn same_origin(a: &str, b: &str) -> bool {
    origin(a).eq_ignore_ascii_case(origin(b))
}

/// A `Location` made absolute against the endpoint.
pub(crate) fn absolute(endpoint: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        loc.to_string()
    } else if loc.starts_with('/') {
        format!("{}{loc}", origin(endpoint))
    } else {
        format!("{}/{loc}", endpoint.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(encode("refs/pr/1", false), "refs%2Fpr%2F1");
        assert_eq!(encode("dir/a b.gguf", true), "dir/a%20b.gguf");
        assert_eq!(absolute("http://h:1/x", "/s/f"), "http://h:1/s/f");
        assert_eq!(absolute("http://h:1", "https://cdn/f"), "https://cdn/f");
        assert!(same_origin("http://h:1/a", "http://h:1"));
        assert!(!same_origin(
            "https://cdn.example/a",
            "https://huggingface.co"
        ));
    }
}

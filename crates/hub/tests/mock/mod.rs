//! A small stand-in for the Hugging Face Hub on 127.0.0.1: the revision
//! JSON API, `HEAD .../resolve/...` answering with a redirect to a storage
//! path on the same server plus the hub's headers, storage GETs with Range,
//! and faults (a connection cut after N bytes, a flipped byte, Range
//! ignored, a gated repository). One request per connection.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct MockRepo {
    pub commit: String,
    pub files: BTreeMap<String, Vec<u8>>,
    /// Needs `Authorization: Bearer good-token`.
    pub gated: bool,
}

#[derive(Clone, Default)]
pub struct Faults {
    /// Each storage answer sends at most this many body bytes, then closes.
    pub cut_after: Option<usize>,
    /// The n-th storage answer (from 1) sends at most `schedule[n - 1]`
    /// body bytes; answers past the list follow `cut_after`.
    pub schedule: Vec<usize>,
    /// Flip one byte of every storage answer's body.
    pub corrupt: bool,
    /// Answer every storage GET with 200 and the whole file.
    pub ignore_range: bool,
    /// Answer the first this many storage GETs with 503.
    pub unavailable: usize,
    /// Redirect to an absolute storage URL (as the real hub's CDN links).
    pub absolute_location: bool,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub auth: Option<String>,
}

struct State {
    repos: BTreeMap<String, MockRepo>,
    faults: Faults,
    log: Vec<Request>,
    storage_answers: usize,
}

pub struct MockHub {
    pub url: String,
    state: Arc<Mutex<State>>,
}

pub use shohin_hub::sha256_hex;

/// Deterministic bytes that are not all alike.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .rotate_left(seed as u32 % 32) as u8
                ^ seed
        })
        .collect()
}

impl MockHub {
    pub fn start(repos: BTreeMap<String, MockRepo>, faults: Faults) -> MockHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            repos,
            faults,
            log: Vec::new(),
            storage_answers: 0,
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        MockHub { url, state }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.state.lock().unwrap().faults = f;
    }
}

fn respond(
    s: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
    send_body: bool,
) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    let has_len = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        h.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    h.push_str("\r\n");
    s.write_all(h.as_bytes())?;
    if send_body {
        s.write_all(body)?;
    }
    s.flush()
}

fn error(s: &mut TcpStream, status: &str, code: &str, head: bool) -> std::io::Result<()> {
    let body = format!("{{\"error\":\"{code}\"}}");
    respond(
        s,
        status,
        &[
            ("X-Error-Code", code.to_string()),
            ("X-Error-Message", format!("mock: {code}")),
        ],
        body.as_bytes(),
        !head,
    )
}

fn handle(mut s: TcpStream, st: &Mutex<State>) -> std::io::Result<()> {
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut range = None;
    let mut auth = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let v = v.trim().to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v),
                "authorization" => auth = Some(v),
                _ => {}
            }
        }
    }
    let mut g = st.lock().unwrap();
    g.log.push(Request {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
        auth: auth.clone(),
    });
    let head = method == "HEAD";
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // GET /api/models/{owner}/{name}/revision/{rev}
    if segs.len() == 6 && segs[0] == "api" && segs[1] == "models" && segs[4] == "revision" {
        let repo = format!("{}/{}", segs[2], segs[3]);
        let Some(m) = g.repos.get(&repo).cloned() else {
            drop(g);
            return error(&mut s, "404 Not Found", "RepoNotFound", head);
        };
        if segs[5] != "main" && segs[5] != m.commit {
            drop(g);
            return error(&mut s, "404 Not Found", "RevisionNotFound", head);
        }
        drop(g);
        let siblings: Vec<_> = m
            .files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({ "id": repo, "sha": m.commit, "siblings": siblings });
        return respond(
            &mut s,
            "200 OK",
            &[("Content-Type", "application/json".to_string())],
            body.to_string().as_bytes(),
            !head,
        );
    }
    // /{owner}/{name}/resolve/{rev}/{file...}
    if segs.len() >= 5 && segs[2] == "resolve" {
        let repo = format!("{}/{}", segs[0], segs[1]);
        let file = segs[4..].join("/");
        let Some(m) = g.repos.get(&repo).cloned() else {
            drop(g);
            return error(&mut s, "404 Not Found", "RepoNotFound", head);
        };
        drop(g);
        if m.gated && auth.as_deref() != Some("Bearer good-token") {
            let status = if auth.is_some() {
                "403 Forbidden"
            } else {
                "401 Unauthorized"
            };
            return error(&mut s, status, "GatedRepo", head);
        }
        if segs[3] != "main" && segs[3] != m.commit {
            return error(&mut s, "404 Not Found", "RevisionNotFound", head);
        }
        let Some(data) = m.files.get(&file) else {
            return error(&mut s, "404 Not Found", "EntryNotFound", head);
        };
        let absolute = st.lock().unwrap().faults.absolute_location;
        let location = if absolute {
            format!("http://{}/storage/{repo}/{file}", s.local_addr()?)
        } else {
            // Relative, as the hub's redirects for renamed repos are.
            format!("/storage/{repo}/{file}")
        };
        return respond(
            &mut s,
            "302 Found",
            &[
                ("Location", location),
                ("X-Repo-Commit", m.commit.clone()),
                ("X-Linked-Etag", format!("\"{}\"", sha256_hex(data))),
                ("X-Linked-Size", data.len().to_string()),
                ("ETag", "W/\"0123abcd\"".to_string()),
            ],
            b"",
            !head,
        );
    }
    // GET /storage/{owner}/{name}/{file...}
    if segs.len() >= 4 && segs[0] == "storage" {
        let repo = format!("{}/{}", segs[1], segs[2]);
        let file = segs[3..].join("/");
        let Some(mut data) = g.repos.get(&repo).and_then(|m| m.files.get(&file)).cloned() else {
            drop(g);
            return error(&mut s, "404 Not Found", "EntryNotFound", head);
        };
        let faults = g.faults.clone();
        g.storage_answers += 1;
        let nth = g.storage_answers;
        drop(g);
        if nth <= faults.unavailable {
            return error(&mut s, "503 Service Unavailable", "", head);
        }
        if faults.corrupt {
            let i = data.len() / 2;
            data[i] ^= 0x55;
        }
        let total = data.len();
        let start = match (&range, faults.ignore_range) {
            (Some(r), false) => r
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        };
        let (status, body, mut headers) = match start {
            Some(n) if n >= total => {
                return respond(
                    &mut s,
                    "416 Range Not Satisfiable",
                    &[("Content-Range", format!("bytes */{total}"))],
                    b"",
                    !head,
                )
            }
            Some(n) => (
                "206 Partial Content",
                &data[n..],
                vec![("Content-Range", format!("bytes {n}-{}/{total}", total - 1))],
            ),
            None => ("200 OK", &data[..], vec![]),
        };
        headers.push(("Content-Length", body.len().to_string()));
        let cut = faults.schedule.get(nth - 1).copied().or(faults.cut_after);
        let sent = cut.map_or(body.len(), |c| c.min(body.len()));
        respond(&mut s, status, &headers, &body[..sent], !head)?;
        let _ = s.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    drop(g);
    error(&mut s, "404 Not Found", "RepoNotFound", head)
}

//! `serve` over a real socket: `/health` says `loading` until the model is
//! in, then `ok`; a shutdown signal ends the server.

mod common;
use common::*;
use shohin_engine::scheduler::EngineConfig;
use shohin_server::{serve, AppState, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on its own connection: (status, body).
async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_loading_then_ok_and_a_signal_stops_the_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let loader = move || {
        wait.recv().map_err(|e| e.to_string())?;
        let (m, tok) = model();
        AppState::new(
            m,
            tok,
            Path::new(MODEL),
            ServerConfig::new(EngineConfig::new(1, 128)),
        )
        .map_err(|e| e.to_string())
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, loader, async {
        let _ = stopped.await;
    }));

    let (status, body) = http(addr, "GET", "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body, r#"{"status":"loading"}"#);
    let (status, body) = http(addr, "GET", "/v1/models").await;
    assert_eq!(status, 503);
    assert!(body.contains("\"error\""), "{body}");

    go.send(()).unwrap();
    let t = Instant::now();
    loop {
        let (status, body) = http(addr, "GET", "/health").await;
        if status == 200 {
            assert_eq!(body, r#"{"status":"ok"}"#);
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "still {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = http(addr, "GET", "/v1/models").await;
    assert_eq!(status, 200, "{body}");

    stop.send(()).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("the server stops")
        .expect("no panic");
    assert_eq!(r, Ok(()));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_ends_serve_with_the_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = serve(
        listener,
        || Err("no such model".to_string()),
        std::future::pending(),
    )
    .await;
    assert_eq!(r, Err("no such model".to_string()));
}

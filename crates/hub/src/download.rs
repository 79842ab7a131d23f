//! Downloading one file to `{dest}.part`, resuming with `Range`, checking
//! the sha256 and only then renaming it to `dest`.

use crate::cache::{lock_path, part_path};
use crate::error::{io_err, HubError};
use crate::{FileMeta, Hub};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// How one attempt ended, when not with the whole file.
enum Failure {
    /// Worth another try (a cut connection, a 5xx); `progressed` when some
    /// bytes were written first.
    Retry {
        message: String,
        progressed: bool,
    },
    Fatal(HubError),
}

pub(crate) fn download(
    hub: &Hub,
    meta: &FileMeta,
    dest: &Path,
    what: &str,
) -> Result<(), HubError> {
    let dir = dest.parent().expect("a file in a snapshot folder");
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    // One download of a file at a time, across processes: the others wait
    // here, then find the file in place. The OS drops the lock of a process
    // that dies; the lock file is removed after a success only.
    let lock_file = lock_path(dest);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .map_err(io_err(&lock_file))?;
    lock.lock().map_err(io_err(&lock_file))?;
    if dest.is_file() {
        return Ok(());
    }
    let part = part_path(dest);
    let bar = if hub.cfg.progress {
        let b = ProgressBar::new(meta.size.unwrap_or(0));
        b.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        b.set_message(what.to_string());
        b
    } else {
        ProgressBar::hidden()
    };
    let mut failures = 0u32;
    loop {
        match attempt(hub, meta, &part, &bar) {
            Ok(()) => break,
            Err(Failure::Fatal(e)) => {
                bar.abandon();
                return Err(e);
            }
            Err(Failure::Retry {
                message,
                progressed,
            }) => {
                // Attempts that moved the download forward are not counted.
                failures = if progressed { 0 } else { failures + 1 };
                if failures > hub.cfg.retries {
                    bar.abandon();
                    return Err(HubError::Download {
                        what: what.to_string(),
                        attempts: failures,
                        last: message,
                    });
                }
                std::thread::sleep(hub.cfg.retry_delay);
            }
        }
    }
    bar.finish_and_clear();
    let len = fs::metadata(&part).map_err(io_err(&part))?.len();
    if let Some(size) = meta.size {
        if len != size {
            let _ = fs::remove_file(&part);
            return Err(HubError::Size {
                what: what.to_string(),
                expected: size,
                actual: len,
            });
        }
    }
    if let Some(expected) = meta.sha256() {
        let actual = sha256_file(&part)?;
        if actual != expected {
            let _ = fs::remove_file(&part);
            return Err(HubError::Checksum {
                what: what.to_string(),
                expected,
                actual,
            });
        }
    }
    fs::rename(&part, dest).map_err(io_err(dest))?;
    let _ = fs::remove_file(&lock_file);
    Ok(())
}

/// One GET from where `.part` ends.
fn attempt(hub: &Hub, meta: &FileMeta, part: &Path, bar: &ProgressBar) -> Result<(), Failure> {
    let fatal = |e| Failure::Fatal(e);
    let mut have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if let Some(size) = meta.size {
        if have == size {
            return Ok(());
        }
        if have > size {
            File::create(part).map_err(io_err(part)).map_err(fatal)?;
            have = 0;
        }
    }
    let mut req = hub.authorize(hub.get_agent.get(&meta.url), &meta.url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(416, _)) => {
            // The range is past the end: the .part is not this file's start.
            File::create(part).map_err(io_err(part)).map_err(fatal)?;
            return Err(Failure::Retry {
                message: "HTTP 416 for a resumed range; restarting".to_string(),
                progressed: false,
            });
        }
        Err(ureq::Error::Status(status, _)) if status == 429 || status >= 500 => {
            return Err(Failure::Retry {
                message: format!("{}: HTTP {status}", meta.url),
                progressed: false,
            })
        }
        Err(ureq::Error::Status(status, resp)) => {
            let code = resp.header("X-Error-Code").unwrap_or("").to_string();
            return Err(fatal(HubError::Http {
                url: meta.url.clone(),
                status,
                detail: if code.is_empty() {
                    String::new()
                } else {
                    format!(" {code}")
                },
            }));
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(Failure::Retry {
                message: crate::transport_message(&meta.url, &t),
                progressed: false,
            })
        }
    };
    let mut file = match resp.status() {
        206 if have > 0 => {
            let start = resp
                .header("Content-Range")
                .and_then(|v| v.trim().strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if start != Some(have) {
                File::create(part).map_err(io_err(part)).map_err(fatal)?;
                return Err(Failure::Retry {
                    message: "a 206 answer for another range; restarting".to_string(),
                    progressed: false,
                });
            }
            OpenOptions::new()
                .append(true)
                .open(part)
                .map_err(io_err(part))
                .map_err(fatal)?
        }
        200 => {
            // The whole file (a server that ignores Range): start over.
            have = 0;
            File::create(part).map_err(io_err(part)).map_err(fatal)?
        }
        s => {
            return Err(fatal(HubError::Http {
                url: meta.url.clone(),
                status: s,
                detail: ": unexpected answer to a download".to_string(),
            }))
        }
    };
    bar.set_position(have);
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let cut = |message: String, written: u64| Failure::Retry {
        message,
        progressed: written > 0,
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                file.flush().map_err(io_err(part)).map_err(fatal)?;
                return Err(cut(format!("connection cut: {e}"), written));
            }
        };
        file.write_all(&buf[..n])
            .map_err(io_err(part))
            .map_err(fatal)?;
        written += n as u64;
        bar.inc(n as u64);
    }
    file.flush().map_err(io_err(part)).map_err(fatal)?;
    if let Some(size) = meta.size {
        if have + written < size {
            return Err(cut(
                format!("connection closed after {} of {size} bytes", have + written),
                written,
            ));
        }
    }
    Ok(())
}

fn sha256_file(path: &Path) -> Result<String, HubError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

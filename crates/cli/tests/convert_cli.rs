//! `shohin convert DIR OUT --type f16`, then `shohin info -m OUT`.

#[path = "../../convert/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn convert_then_info() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join("cli-convert-ck");
    let _ = std::fs::remove_dir_all(&dir);
    // merges as "a b" strings here (the library test writes pairs)
    common::write_checkpoint(&dir, &common::fixture_vocab(), false);
    let out = tmp.join("cli-convert.gguf");
    let bin = env!("CARGO_BIN_EXE_shohin");
    let o = Command::new(bin)
        .args(["convert"])
        .arg(&dir)
        .arg(&out)
        .args(["--type", "f16", "-t", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("blk.1.ffn_down.weight") && stdout.contains("converted"),
        "{stdout}"
    );
    let o = Command::new(bin)
        .args(["info", "-m"])
        .arg(&out)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{info}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(info.contains("qwen3"), "{info}");

    // a bad type and a directory without config.json: error, exit 1
    let o = Command::new(bin)
        .args(["convert"])
        .arg(&dir)
        .arg(&out)
        .args(["--type", "q3_xl"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("q3_xl"));
    let o = Command::new(bin)
        .args(["convert"])
        .arg(tmp.join("no-such-dir"))
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.starts_with("error:") && e.contains("config.json"), "{e}");
}

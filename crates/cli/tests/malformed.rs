//! Malformed model files: every command that opens the file must exit 1 with
//! `error: <path>: <what is wrong, naming the key or tensor>`, never panic,
//! die of a signal or hang. Each bad file is the tiny fixture with one thing
//! changed, rewritten with `GgufWriter` or patched byte by byte.
//!
//! `info` and `tokenize` read only the metadata and the vocabulary; the
//! weights are checked when `run` loads the model. So for a problem in the
//! weights (missing tensor, wrong shape) only `run` must fail, and `info`
//! must still describe the file.

mod common;
use common::*;
use shohin_gguf::{GgufFile, GgufWriter, TensorToWrite, Value};
use std::path::{Path, PathBuf};

/// Which commands must reject a file.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Scope {
    /// The file itself (container, metadata, tensor table) is broken: every
    /// command fails, `tokenize` included.
    File,
    /// The hyperparameters are broken: `info` and `run` fail (`tokenize`
    /// needs only the vocabulary).
    Hparams,
    /// The vocabulary is broken: every command fails.
    Vocab,
    /// A weight is broken: `run` fails, `info` still succeeds.
    Weights,
}

/// Asserts a clean rejection naming `file` and, elsewhere in the message
/// (the path itself may contain any word), every needle.
fn rejected(out: &Out, file: &str, needles: &[&str]) {
    assert_error(out, &[file]);
    let rest = out.stderr.replace(file, "<FILE>");
    for n in needles {
        assert!(
            rest.contains(n),
            "stderr lacks {n:?} outside the path: {out}"
        );
    }
}

/// Runs `info`, `run` and `tokenize` on `file` and checks each outcome.
fn check(file: &Path, scope: Scope, needles: &[&str]) {
    let f = s(file);
    let info = shohin(&["info", "-m", &f]);
    let info_json = shohin(&["info", "--json", "-m", &f]);
    if scope == Scope::Weights {
        info.ok();
        info_json.ok();
    } else {
        rejected(&info, &f, needles);
        rejected(&info_json, &f, needles);
    }
    let run = shohin(&["run", "-m", &f, "-p", "hi", "-n", "1", "-t", "1"]);
    rejected(&run, &f, needles);
    let tokenize = shohin(&["tokenize", "-m", &f, "hi"]);
    match scope {
        Scope::File | Scope::Vocab => rejected(&tokenize, &f, needles),
        Scope::Hparams | Scope::Weights => {
            tokenize.ok();
        }
    }
    // Keep the scratch space small: a checked file is not needed any more
    // (only ever delete what this suite created).
    if file.starts_with(env!("CARGO_TARGET_TMPDIR")) && file.is_file() {
        let _ = std::fs::remove_file(file);
    }
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(tiny()).expect("read the tiny fixture")
}

/// Byte offsets inside the tiny fixture, derived from the file itself.
struct Layout {
    /// End of the metadata = start of the first tensor info.
    meta_end: usize,
    /// Start of the data section.
    data_start: usize,
    len: usize,
}

fn layout() -> Layout {
    let f = GgufFile::open(&tiny()).expect("open tiny");
    // A writer with the same metadata and no tensors ends where the
    // metadata ends (the fixture is canonically laid out).
    let mut meta = Vec::new();
    GgufWriter::new(f.metadata().to_vec())
        .write_to(&mut meta)
        .expect("write metadata");
    let l = Layout {
        meta_end: meta.len(),
        data_start: usize::try_from(f.data_offset()).expect("offset fits"),
        len: f.as_bytes().len(),
    };
    let b = f.as_bytes();
    // The first tensor info is token_embd.weight: u64 name length, name.
    assert_eq!(&b[l.meta_end..l.meta_end + 8], &17u64.to_le_bytes());
    assert_eq!(&b[l.meta_end + 8..l.meta_end + 25], b"token_embd.weight");
    l
}

/// Offset of the first tensor info's ggml type field (token_embd.weight,
/// 2 dims): name length, name, n_dims, dims.
fn first_type_field(l: &Layout) -> usize {
    l.meta_end + 8 + 17 + 4 + 2 * 8
}

fn write_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write bad file");
    p
}

fn patch(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>, &Layout)) -> PathBuf {
    let l = layout();
    let mut b = tiny_bytes();
    edit(&mut b, &l);
    write_bytes(dir, name, &b)
}

/// The tiny fixture rewritten with `edit` applied to its metadata and tensors.
fn rewrite(
    dir: &Path,
    name: &str,
    edit: impl for<'a> FnOnce(&mut Vec<(String, Value)>, &mut Vec<TensorToWrite<'a>>),
) -> PathBuf {
    let f = GgufFile::open(&tiny()).expect("open tiny");
    let mut meta = f.metadata().to_vec();
    let mut tensors = GgufWriter::from_file(&f).tensors().to_vec();
    edit(&mut meta, &mut tensors);
    let mut w = GgufWriter::new(meta);
    for t in tensors {
        w.add_tensor(t.name, t.dims, t.ggml_type, t.data);
    }
    let p = dir.join(name);
    w.write_to_path(&p).expect("write rewritten file");
    p
}

fn set_meta(meta: &mut [(String, Value)], key: &str, v: Value) {
    let slot = meta
        .iter_mut()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("tiny has no key {key}"));
    slot.1 = v;
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> usize {
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

#[test]
fn truncated_files() {
    let dir = scratch("truncated");
    let l = layout();
    let b = tiny_bytes();
    // (cut point, what the message must name)
    let cuts = [
        (0, "truncated while reading magic"),
        (3, "truncated while reading magic"),
        (6, "truncated while reading version"),
        (12, "truncated while reading tensor count"),
        (20, "truncated while reading metadata count"),
        (24 + 12, "metadata count"),
        (l.meta_end / 2, "cannot fit"),
        (l.meta_end - 1, "tokenizer.chat_template"),
        (l.meta_end + 10, "tensor #0"),
        (l.data_start - 1, "padding before the data section"),
        (l.data_start + 100, "data section"),
        (l.len - 1, "output.weight"),
    ];
    for (cut, needle) in cuts {
        let p = write_bytes(&dir, &format!("cut{cut}.gguf"), &b[..cut]);
        check(&p, Scope::File, &[needle]);
    }
}

#[test]
fn bad_magic_and_versions() {
    let dir = scratch("magic");
    let p = patch(&dir, "magic.gguf", |b, _| b[..4].copy_from_slice(b"GGML"));
    check(&p, Scope::File, &["magic", "not a GGUF file"]);
    for v in [1u32, 99, 3u32.swap_bytes()] {
        let p = patch(&dir, &format!("v{v}.gguf"), |b, _| {
            b[4..8].copy_from_slice(&v.to_le_bytes());
        });
        check(&p, Scope::File, &["version", &v.to_string()]);
    }
}

#[test]
fn huge_counts_and_lengths() {
    let dir = scratch("huge");
    let p = patch(&dir, "ntensors.gguf", |b, _| {
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    });
    check(&p, Scope::File, &["tensor count"]);
    let p = patch(&dir, "nkv.gguf", |b, _| {
        b[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    });
    check(&p, Scope::File, &["metadata count"]);
    // The first metadata key's length.
    let p = patch(&dir, "keylen.gguf", |b, _| {
        b[24..32].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    });
    check(&p, Scope::File, &["string length"]);
    // The token array's length (u32 element type, then u64 count, follow
    // the key).
    let p = patch(&dir, "arraylen.gguf", |b, l| {
        let key = find(&b[..l.meta_end], b"tokenizer.ggml.tokens", 0);
        let count = key + "tokenizer.ggml.tokens".len() + 4 + 4;
        assert_eq!(&b[count..count + 8], &151_936u64.to_le_bytes());
        b[count..count + 8].copy_from_slice(&(1u64 << 58).to_le_bytes());
    });
    check(&p, Scope::File, &["tokenizer.ggml.tokens"]);
}

#[test]
fn bad_tensor_infos() {
    let dir = scratch("tensor-infos");
    let p = patch(&dir, "type.gguf", |b, l| {
        let at = first_type_field(l);
        b[at..at + 4].copy_from_slice(&200u32.to_le_bytes());
    });
    check(&p, Scope::File, &["token_embd.weight", "type id 200"]);
    let p = patch(&dir, "misaligned.gguf", |b, l| {
        let at = first_type_field(l) + 4;
        b[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
    });
    check(&p, Scope::File, &["token_embd.weight", "alignment"]);
    let p = patch(&dir, "past-end.gguf", |b, l| {
        let at = first_type_field(l) + 4;
        b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    });
    check(&p, Scope::File, &["token_embd.weight", "past the end"]);
    // Rename blk.0.attn_v.weight to blk.0.attn_k.weight (same length).
    let p = patch(&dir, "duplicate.gguf", |b, l| {
        let at = find(b, b"blk.0.attn_v.weight", l.meta_end);
        b[at..at + 19].copy_from_slice(b"blk.0.attn_k.weight");
    });
    check(&p, Scope::File, &["blk.0.attn_k.weight", "duplicate"]);
}

#[test]
fn bad_weights() {
    let dir = scratch("weights");
    let p = rewrite(&dir, "missing.gguf", |_, t| {
        t.retain(|t| t.name != "blk.0.ffn_up.weight");
    });
    check(&p, Scope::Weights, &["blk.0.ffn_up.weight", "missing"]);
    let p = rewrite(&dir, "shape.gguf", |_, t| {
        let t = t
            .iter_mut()
            .find(|t| t.name == "blk.0.attn_norm.weight")
            .expect("attn_norm");
        t.dims = vec![128];
        t.data = t.data[..128 * 4].to_vec().into();
    });
    check(&p, Scope::Weights, &["blk.0.attn_norm.weight", "shape"]);
    // A norm weight must be F32: as Q1_0 the engine refuses it.
    let p = rewrite(&dir, "normtype.gguf", |_, t| {
        let t = t
            .iter_mut()
            .find(|t| t.name == "output_norm.weight")
            .expect("output_norm");
        t.ggml_type = shohin_gguf::GgmlType::Q1_0;
        // 256 elements: 2 blocks of 128 weights, 18 bytes each (f16 scale,
        // 16 bytes of sign bits).
        t.data = vec![0u8; 2 * 18].into();
    });
    check(&p, Scope::Weights, &["output_norm.weight", "Q1_0"]);
    // Fewer embedding rows than tokens (tied output, so no other tensor
    // gives the vocabulary size away).
    let p = rewrite(&dir, "rows.gguf", |_, t| {
        t.retain(|t| t.name != "output.weight");
        let t = t
            .iter_mut()
            .find(|t| t.name == "token_embd.weight")
            .expect("token_embd");
        let row = t.data.len() / 151_936;
        t.dims = vec![256, 151_000];
        t.data = t.data[..row * 151_000].to_vec().into();
    });
    check(&p, Scope::Weights, &["151936 tokens", "151000 rows"]);
}

#[test]
fn bad_hparams() {
    let dir = scratch("hparams");
    let cases = [
        ("heads0", "qwen3.attention.head_count", Value::U32(0)),
        ("kv3", "qwen3.attention.head_count_kv", Value::U32(3)),
        ("nanrope", "qwen3.rope.freq_base", Value::F32(f32::NAN)),
        ("layers0", "qwen3.block_count", Value::U32(0)),
        (
            "ctxstr",
            "qwen3.context_length",
            Value::String("4096".into()),
        ),
    ];
    for (name, key, v) in cases {
        let p = rewrite(&dir, &format!("{name}.gguf"), |m, _| set_meta(m, key, v));
        check(&p, Scope::Hparams, &[key]);
    }
    let p = rewrite(&dir, "arch.gguf", |m, _| {
        set_meta(m, "general.architecture", Value::String("mamba9".into()));
    });
    check(&p, Scope::Hparams, &["mamba9", "architecture"]);
}

#[test]
fn bad_vocab() {
    let dir = scratch("vocab");
    // "hello" as a GGUF string: u64 length 5, bytes. Make it invalid UTF-8.
    let p = patch(&dir, "utf8.gguf", |b, l| {
        let at = find(&b[..l.meta_end], b"\x05\0\0\0\0\0\0\0hello", 0);
        b[at + 8] = 0xFF;
    });
    check(&p, Scope::File, &["tokenizer.ggml.tokens", "UTF-8"]);
    let p = rewrite(&dir, "merge.gguf", |m, _| {
        let (_, merges) = m
            .iter_mut()
            .find(|(k, _)| k == "tokenizer.ggml.merges")
            .expect("merges");
        let Value::Array(_, items) = merges else {
            panic!("merges is not an array")
        };
        items[0] = Value::String("qqzzqq xxyyxx".into());
    });
    check(&p, Scope::Vocab, &["merge #0", "qqzzqq"]);
    let p = rewrite(&dir, "bos.gguf", |m, _| {
        set_meta(m, "tokenizer.ggml.bos_token_id", Value::U32(999_999));
    });
    check(&p, Scope::Vocab, &["bos", "999999"]);
    let p = rewrite(&dir, "notokens.gguf", |m, _| {
        m.retain(|(k, _)| k != "tokenizer.ggml.tokens");
    });
    check(&p, Scope::Vocab, &["tokenizer.ggml.tokens"]);
}

#[test]
fn not_a_model_file() {
    let dir = scratch("not-a-file");
    let missing = dir.join("does-not-exist.gguf");
    check(&missing, Scope::File, &["No such file"]);
    check(&dir, Scope::File, &["not a regular file"]);
    let empty = write_bytes(&dir, "empty.gguf", b"");
    check(&empty, Scope::File, &["magic"]);
    let text = write_bytes(&dir, "text.gguf", b"hello, I am not a model\n");
    check(&text, Scope::File, &["magic"]);
    check(Path::new("/dev/zero"), Scope::File, &["not a regular file"]);
    // A FIFO nobody writes to: opening it for reading would block forever.
    let fifo = dir.join("fifo.gguf");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    check(&fifo, Scope::File, &["not a regular file"]);
}

/// Each cause is printed once: an error that returns its cause as
/// `source()` must not also print it in its own message, or anyhow's `{:#}`
/// chain repeats it.
#[test]
fn error_messages_do_not_repeat_their_cause() {
    let dir = scratch("repeat");
    let missing = s(&dir.join("none.gguf"));
    let out = shohin(&["info", "-m", &missing]);
    assert_error(&out, &["No such file or directory"]);
    assert_eq!(out.stderr.matches("No such file").count(), 1, "{out}");
    let p = rewrite(&dir, "bos.gguf", |m, _| {
        set_meta(m, "tokenizer.ggml.bos_token_id", Value::U32(999_999));
    });
    let out = shohin(&["info", "-m", &s(&p)]);
    assert_error(&out, &["999999"]);
    assert_eq!(out.stderr.matches("999999").count(), 1, "{out}");
}

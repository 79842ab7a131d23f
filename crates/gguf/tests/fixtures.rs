//! The real files: what the reader finds must match gguf-py's reading
//! (tests/data/golden.json, made by tests/data/gen_golden.py), and writing
//! them back must reproduce them byte for byte.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use shohin_gguf::{GgufFile, GgufWriter, Value};
use shohin_test_support::{fixture, real_model};

fn path_of(file: &str) -> PathBuf {
    if file.starts_with("qwen2.5-coder") {
        real_model()
    } else {
        fixture(file)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x100_0000_01b3;

/// The value's payload as gguf.md lays it out, encoded here independently of
/// the crate's writer (arrays: the elements only, as in gen_golden.py).
fn payload(v: &Value, out: &mut Vec<u8>, top: bool) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
        Value::String(s) => {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        Value::Array(t, items) => {
            if !top {
                out.extend(t.id().to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
            }
            items.iter().for_each(|i| payload(i, out, false));
        }
    }
}

fn fnv(bytes: &[u8]) -> String {
    let h = bytes
        .iter()
        .fold(FNV_OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(FNV_PRIME));
    format!("{h:016x}")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_against_gguf_py(g: &Json) {
    let name = g["file"].as_str().unwrap();
    let f = GgufFile::open(&path_of(name)).unwrap();
    assert_eq!(f.version() as u64, g["version"].as_u64().unwrap(), "{name}");
    assert_eq!(f.alignment(), g["alignment"].as_u64().unwrap(), "{name}");
    assert_eq!(f.file_size(), g["size"].as_u64().unwrap(), "{name}");
    let kvs = g["metadata"].as_array().unwrap();
    assert_eq!(f.metadata().len(), kvs.len(), "{name}");
    for ((key, v), want) in f.metadata().iter().zip(kvs) {
        assert_eq!(key, want["key"].as_str().unwrap(), "{name}");
        let types: Vec<u64> = want["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        assert_eq!(v.value_type().id() as u64, types[0], "{name} {key}");
        if let Value::Array(elem, items) = v {
            assert_eq!(elem.id() as u64, types[1], "{name} {key}");
            assert_eq!(
                items.len() as u64,
                want["n"].as_u64().unwrap(),
                "{name} {key}"
            );
        }
        let mut bytes = Vec::new();
        payload(v, &mut bytes, true);
        assert_eq!(fnv(&bytes), want["fnv"].as_str().unwrap(), "{name} {key}");
    }
    let tensors = g["tensors"].as_array().unwrap();
    assert_eq!(f.tensors().len(), tensors.len(), "{name}");
    if !tensors.is_empty() {
        assert_eq!(
            f.data_offset(),
            g["data_offset"].as_u64().unwrap(),
            "{name}"
        );
    }
    for (t, want) in f.tensors().iter().zip(tensors) {
        assert_eq!(t.name, want["name"].as_str().unwrap());
        let dims: Vec<u64> = want["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims, dims, "{}", t.name);
        assert_eq!(
            t.ggml_type.id() as u64,
            want["type"].as_u64().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(t.offset, want["offset"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(t.n_bytes, want["n_bytes"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(t.n_elements, dims.iter().product::<u64>(), "{}", t.name);
        let data = f.tensor_data(t);
        assert_eq!(data.len() as u64, t.n_bytes);
        assert_eq!(
            hex(&data[..16]),
            want["head"].as_str().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(
            hex(&data[data.len() - 16..]),
            want["tail"].as_str().unwrap(),
            "{}",
            t.name
        );
    }
}

/// gguf-py's reading of the fixtures (this crate's own tests/data, not a
/// shared golden file).
fn gguf_py_golden() -> Vec<Json> {
    let text = include_str!("data/golden.json");
    serde_json::from_str::<Json>(text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn fixtures_match_gguf_py() {
    let g = gguf_py_golden();
    assert_eq!(g.len(), 4);
    g.iter().for_each(check_against_gguf_py);
}

/// A sink that compares what is written with the original file as it goes,
/// so the 400 MB model is checked without a second copy in memory.
struct Compare<'a> {
    expected: &'a [u8],
    pos: usize,
}

impl Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let end = self.pos + buf.len();
        let want = self.expected.get(self.pos..end);
        if want != Some(buf) {
            let at = want.map_or(self.expected.len(), |w| {
                self.pos + w.iter().zip(buf).position(|(a, b)| a != b).unwrap_or(0)
            });
            return Err(io::Error::other(format!("first difference at byte {at}")));
        }
        self.pos = end;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn fixtures_round_trip_byte_identical() {
    for g in gguf_py_golden() {
        let path = path_of(g["file"].as_str().unwrap());
        let f = GgufFile::open(&path).unwrap();
        let mut sink = Compare {
            expected: f.as_bytes(),
            pos: 0,
        };
        let n = GgufWriter::from_file(&f)
            .write_to(&mut sink)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(n, f.file_size(), "{}", path.display());
        assert_eq!(sink.pos as u64, f.file_size());
    }
}

#[test]
fn compare_sink_detects_a_difference() {
    let f = GgufFile::open(&fixture("ggml-vocab-qwen2.gguf")).unwrap();
    let mut bytes = f.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut sink = Compare {
        expected: &bytes,
        pos: 0,
    };
    let e = GgufWriter::from_file(&f).write_to(&mut sink).unwrap_err();
    assert!(e.to_string().contains(&format!("byte {last}")), "{e}");
}

#[test]
fn write_to_path_and_reopen() {
    let f = GgufFile::open(&fixture("tiny-q2_0.gguf")).unwrap();
    let dir = std::env::temp_dir().join(format!("shohin-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("copy.gguf");
    GgufWriter::from_file(&f).write_to_path(&out).unwrap();
    let g = GgufFile::open(&out).unwrap();
    assert_eq!(g.as_bytes(), f.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn typed_getters_on_the_real_model() {
    let f = GgufFile::open(&real_model()).unwrap();
    assert_eq!(f.get_str("general.architecture").unwrap(), "qwen2");
    assert_eq!(f.get_u32("qwen2.block_count").unwrap(), 24);
    assert_eq!(f.get_u32("qwen2.embedding_length").unwrap(), 896);
    assert_eq!(f.get_f32("qwen2.rope.freq_base").unwrap(), 1_000_000.0);
    assert_eq!(f.get_array("tokenizer.ggml.tokens").unwrap().len(), 151_936);
    let t = f.tensor("token_embd.weight").unwrap();
    assert_eq!(t.dims, [896, 151_936]);
    assert_eq!(f.tensor_data(t).len() as u64, t.n_bytes);
}

/// Opening must stay cheap: the target is well under 100 ms in release; the
/// bound here is loose because the test machine is shared.
#[test]
fn opening_is_fast() {
    for path in [real_model(), fixture("ggml-vocab-qwen2.gguf")] {
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                let f = GgufFile::open(&path).unwrap();
                let el = t.elapsed();
                drop(f);
                el
            })
            .min()
            .unwrap();
        eprintln!("open {}: {best:?}", path.display());
        assert!(
            best < Duration::from_millis(400),
            "{}: {best:?}",
            path.display()
        );
    }
}

//! Against gguf-py's writer (tests/data/gguf_py_small.gguf, made by
//! tests/data/gen_gguf_py_small.py): the reader finds exactly what the
//! script wrote, and the crate's writer, given the same content from
//! scratch, produces the same bytes.

use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};

const FILE: &[u8] = include_bytes!("data/gguf_py_small.gguf");

fn expected_metadata() -> Vec<(String, Value)> {
    let s = |x: &str| Value::String(x.to_owned());
    let i32s =
        |xs: &[i32]| Value::Array(ValueType::I32, xs.iter().map(|&x| Value::I32(x)).collect());
    vec![
        ("general.architecture".into(), s("llama")),
        ("general.alignment".into(), Value::U32(64)),
        ("t.u8".into(), Value::U8(200)),
        ("t.i8".into(), Value::I8(-100)),
        ("t.u16".into(), Value::U16(60000)),
        ("t.i16".into(), Value::I16(-30000)),
        ("t.u32".into(), Value::U32(4_000_000_000)),
        ("t.i32".into(), Value::I32(-2_000_000_000)),
        ("t.f32".into(), Value::F32(0.25)),
        ("t.bool".into(), Value::Bool(true)),
        ("t.str".into(), s("héllo ✓")),
        ("t.u64".into(), Value::U64(u64::MAX)),
        ("t.i64".into(), Value::I64(i64::MIN)),
        ("t.f64".into(), Value::F64(-2.5e300)),
        (
            "t.tokens".into(),
            Value::Array(ValueType::String, vec![s("a"), s(""), s("Ġthe")]),
        ),
        ("t.ints".into(), i32s(&[1, -2, 3])),
        (
            "t.nested".into(),
            Value::Array(ValueType::Array, vec![i32s(&[1, 2]), i32s(&[3])]),
        ),
    ]
}

fn f32_bytes() -> Vec<u8> {
    (0..16).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

/// IEEE half of small integers: exact, built by hand (no `half` crate).
fn f16_bytes() -> Vec<u8> {
    (0u16..64)
        .flat_map(|i| {
            let h = if i == 0 {
                0
            } else {
                let e = 15 - i.leading_zeros() as u16; // floor(log2 i)
                let mant = (i << (10 - e)) & 0x3ff;
                ((e + 15) << 10) | mant
            };
            h.to_le_bytes()
        })
        .collect()
}

fn q8_bytes() -> Vec<u8> {
    (0..68u8).collect()
}

#[test]
fn reads_what_gguf_py_wrote() {
    let f = GgufFile::from_bytes(FILE.to_vec()).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.metadata(), &expected_metadata()[..]);
    let t: Vec<_> = f
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), t.dims.clone(), t.ggml_type, t.offset))
        .collect();
    assert_eq!(
        t,
        [
            ("w", vec![8, 2], GgmlType::F32, 0),
            ("h", vec![64], GgmlType::F16, 64),
            ("q", vec![32, 2], GgmlType::Q8_0, 192),
        ]
    );
    assert_eq!(f.tensor_data(&f.tensors()[0]), &f32_bytes()[..]);
    assert_eq!(f.tensor_data(&f.tensors()[1]), &f16_bytes()[..]);
    assert_eq!(f.tensor_data(&f.tensors()[2]), &q8_bytes()[..]);
}

#[test]
fn writes_what_gguf_py_writes() {
    let mut w = GgufWriter::new(expected_metadata());
    w.add_tensor("w", vec![8, 2], GgmlType::F32, f32_bytes());
    w.add_tensor("h", vec![64], GgmlType::F16, f16_bytes());
    w.add_tensor("q", vec![32, 2], GgmlType::Q8_0, q8_bytes());
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    assert_eq!(out, FILE);
}

//! The writer: layout (offsets, padding, alignment) checked byte by byte,
//! and everything the reader would reject is refused before writing.

mod common;

use std::borrow::Cow;

use common::{every_value_type, noise, Raw};
use shohin_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value, ValueType};

fn write(w: &GgufWriter<'_>) -> Result<Vec<u8>, GgufError> {
    let mut out = Vec::new();
    w.write_to(&mut out)?;
    Ok(out)
}

#[test]
fn layout_matches_a_hand_built_file() {
    let mut w = GgufWriter::new(vec![("k".into(), Value::U32(7))]);
    w.add_tensor("a", vec![3], GgmlType::F32, noise(1, 12));
    w.add_tensor("b", vec![32], GgmlType::Q8_0, noise(2, 34));
    let expected = Raw::header(3, 2, 1)
        .kv_u32("k", 7)
        .tensor("a", &[3], 0, 0)
        .tensor("b", &[32], 8, 32)
        .pad(32)
        .bytes(&noise(1, 12))
        .pad(32)
        .bytes(&noise(2, 34))
        .pad(32)
        .0;
    assert_eq!(write(&w).unwrap(), expected);
}

#[test]
fn no_tensors_means_no_padding() {
    let w = GgufWriter::new(vec![("general.name".into(), Value::String("x".into()))]);
    let expected = Raw::header(3, 0, 1).kv("general.name", 8).string(b"x").0;
    assert_eq!(write(&w).unwrap(), expected);
}

#[test]
fn honors_general_alignment_and_version() {
    let mut w = GgufWriter::new(vec![("general.alignment".into(), Value::U32(256))]);
    w.add_tensor("a", vec![4], GgmlType::F32, vec![1; 16]);
    w.add_tensor("b", vec![4], GgmlType::F16, vec![2; 8]);
    w.set_version(2).unwrap();
    let bytes = write(&w).unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.data_offset(), 256);
    assert_eq!(f.tensor("b").unwrap().offset, 256);
    assert_eq!(bytes.len(), 256 * 3);
    assert_eq!(f.tensor_data(f.tensor("b").unwrap()), &[2; 8]);
    assert!(matches!(
        w.set_version(1),
        Err(GgufError::UnsupportedVersion(1))
    ));
}

#[test]
fn every_value_type_round_trips() {
    let meta = every_value_type();
    let w = GgufWriter::new(meta.clone());
    let f = GgufFile::from_bytes(write(&w).unwrap()).unwrap();
    assert_eq!(f.metadata(), &meta[..]);
}

#[test]
fn q2_0_g128_round_trips_when_unambiguous_and_is_refused_otherwise() {
    // 4096 x 4: g128 = 4352 bytes, g64 = 4608 > slot 4352: read back as g128.
    let n = 4096 * 4;
    let g128 = n / 128 * 34;
    let mut w = GgufWriter::new(vec![]);
    w.add_tensor("t", vec![4096, 4], GgmlType::Q2_0G128, noise(3, g128));
    w.add_tensor("u", vec![64], GgmlType::Q2_0, noise(4, 18));
    let f = GgufFile::from_bytes(write(&w).unwrap()).unwrap();
    assert_eq!(f.tensor("t").unwrap().ggml_type, GgmlType::Q2_0G128);
    assert_eq!(f.tensor("u").unwrap().ggml_type, GgmlType::Q2_0);
    assert_eq!(f.tensor_data(f.tensor("t").unwrap()), &noise(3, g128)[..]);
    // 128 weights: g128 = 34 bytes, padded slot 64 >= g64's 36: ambiguous.
    let mut w = GgufWriter::new(vec![]);
    w.add_tensor("t", vec![128], GgmlType::Q2_0G128, noise(3, 34));
    assert!(matches!(write(&w), Err(GgufError::AmbiguousQ2_0 { tensor }) if tensor == "t"));
}

#[test]
fn ptq1_0_is_type_143_of_28_bytes_per_128() {
    // hand-built: a 256 x 2 tensor of id 143 (4 blocks, 112 bytes), then an
    // F32 one right after its padded slot
    let data = noise(5, 112);
    let file = Raw::header(3, 2, 0)
        .tensor("p", &[256, 2], 143, 0)
        .tensor("f", &[4], 0, 128)
        .pad(32)
        .bytes(&data)
        .pad(32)
        .bytes(&noise(6, 16))
        .pad(32)
        .0;
    let f = GgufFile::from_bytes(file).unwrap();
    let t = f.tensor("p").unwrap();
    assert_eq!(t.ggml_type, GgmlType::PTQ1_0);
    assert_eq!((t.n_elements, t.n_bytes), (512, 112));
    assert_eq!(f.tensor_data(t), &data[..]);
    // and the writer produces the same layout
    let mut w = GgufWriter::new(vec![]);
    w.add_tensor("p", vec![256, 2], GgmlType::PTQ1_0, data.clone());
    let g = GgufFile::from_bytes(write(&w).unwrap()).unwrap();
    assert_eq!(g.tensor("p").unwrap().ggml_type, GgmlType::PTQ1_0);
    assert_eq!(g.tensor_data(g.tensor("p").unwrap()), &data[..]);
    // 100 weights are not whole blocks
    let mut w = GgufWriter::new(vec![]);
    w.add_tensor("p", vec![100], GgmlType::PTQ1_0, vec![0; 28]);
    assert!(write(&w).is_err());
}

#[test]
fn refuses_what_the_reader_would_reject() {
    let t = |name: &str, dims: Vec<u64>, ty, len| {
        let mut w = GgufWriter::new(vec![]);
        w.add_tensor(name, dims, ty, vec![0u8; len]);
        write(&w).unwrap_err()
    };
    assert!(matches!(
        t("a", vec![4], GgmlType::F32, 15),
        GgufError::DataLength {
            need: 16,
            got: 15,
            ..
        }
    ));
    assert!(matches!(
        t("a", vec![], GgmlType::F32, 0),
        GgufError::BadDimCount { n_dims: 0, .. }
    ));
    assert!(matches!(
        t("a", vec![1; 5], GgmlType::F32, 4),
        GgufError::BadDimCount { n_dims: 5, .. }
    ));
    assert!(matches!(
        t("a", vec![4, 0], GgmlType::F32, 0),
        GgufError::ZeroDim { axis: 1, .. }
    ));
    assert!(matches!(
        t("a", vec![1 << 62, 4], GgmlType::F32, 0),
        GgufError::DimsOverflow { .. }
    ));
    assert!(matches!(
        t("a", vec![16, 2], GgmlType::Q8_0, 34),
        GgufError::RowNotBlockMultiple { .. }
    ));
    assert!(matches!(
        t("a", vec![256], GgmlType::Q8K, 292),
        GgufError::UnknownType { id: 15, .. }
    ));

    let mut w = GgufWriter::new(vec![]);
    w.add_tensor("a", vec![1], GgmlType::F32, Cow::Borrowed(&[0u8; 4][..]));
    w.add_tensor("a", vec![1], GgmlType::F32, vec![0u8; 4]);
    assert!(matches!(write(&w), Err(GgufError::DuplicateTensor(n)) if n == "a"));

    let m = |meta: Vec<(String, Value)>| write(&GgufWriter::new(meta)).unwrap_err();
    assert!(matches!(
        m(vec![("k".into(), Value::U8(1)), ("k".into(), Value::U8(2))]),
        GgufError::DuplicateKey(_)
    ));
    assert!(matches!(
        m(vec![("".into(), Value::U8(1))]),
        GgufError::EmptyKey { index: 0 }
    ));
    assert!(matches!(
        m(vec![("general.alignment".into(), Value::U32(0))]),
        GgufError::BadAlignment(0)
    ));
    assert!(matches!(
        m(vec![("general.alignment".into(), Value::U32(24))]),
        GgufError::BadAlignment(24)
    ));
    assert!(matches!(
        m(vec![("general.alignment".into(), Value::I32(32))]),
        GgufError::WrongType {
            expected: "u32",
            ..
        }
    ));
    let mixed = Value::Array(ValueType::U8, vec![Value::U8(1), Value::I8(1)]);
    assert!(matches!(
        m(vec![("k".into(), mixed)]),
        GgufError::MixedArray {
            declared: ValueType::U8,
            ..
        }
    ));
    let mut deep = Value::Array(ValueType::U8, vec![]);
    for _ in 0..shohin_gguf::MAX_ARRAY_DEPTH {
        deep = Value::Array(ValueType::Array, vec![deep]);
    }
    assert!(matches!(
        m(vec![("k".into(), deep)]),
        GgufError::NestingTooDeep { .. }
    ));
}

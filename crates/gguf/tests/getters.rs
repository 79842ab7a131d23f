//! Typed metadata getters: integer widening and range checks, float
//! widening, and the MissingKey / WrongType / OutOfRange errors.

mod common;

use common::Raw;
use shohin_gguf::{GgufError, GgufFile, Value, ValueType};

fn file() -> GgufFile {
    let b = Raw::header(3, 0, 9)
        .kv("ctx64", 10)
        .u64(32768)
        .kv("ctx_i32", 5)
        .u32(4096)
        .kv("neg", 5)
        .u32((-1i32) as u32)
        .kv("big", 10)
        .u64(1 << 40)
        .kv("eps", 6)
        .u32(1e-6f32.to_bits())
        .kv("theta", 12)
        .u64(1e6f64.to_bits())
        .kv("huge", 12)
        .u64(1e300f64.to_bits())
        .kv("name", 8)
        .string(b"qwen2")
        .kv("flag", 7)
        .u8(1)
        .0;
    GgufFile::from_bytes(b).unwrap()
}

#[test]
fn integers_of_any_type_that_fit() {
    let f = file();
    assert_eq!(f.get_u32("ctx64").unwrap(), 32768);
    assert_eq!(f.get_u32("ctx_i32").unwrap(), 4096);
    assert_eq!(f.get_u64("big").unwrap(), 1 << 40);
    assert_eq!(f.get_i64("neg").unwrap(), -1);
    assert_eq!(f.get("ctx64"), Some(&Value::U64(32768)));
}

#[test]
fn integers_out_of_range() {
    let f = file();
    let e = f.get_u32("big").unwrap_err();
    assert!(
        matches!(&e, GgufError::OutOfRange { key, target: "u32", value } if key == "big" && value == "1099511627776"),
        "{e:?}"
    );
    assert!(matches!(
        f.get_u32("neg"),
        Err(GgufError::OutOfRange { .. })
    ));
    assert!(matches!(
        f.get_u64("neg"),
        Err(GgufError::OutOfRange { .. })
    ));
}

#[test]
fn floats() {
    let f = file();
    assert_eq!(f.get_f32("eps").unwrap(), 1e-6);
    assert_eq!(f.get_f32("theta").unwrap(), 1e6);
    assert!(matches!(
        f.get_f32("huge"),
        Err(GgufError::OutOfRange { target: "f32", .. })
    ));
    let e = f.get_f32("ctx64").unwrap_err();
    assert!(
        matches!(&e, GgufError::WrongType { key, expected: "f32 or f64", found } if key == "ctx64" && found == "u64"),
        "{e:?}"
    );
}

#[test]
fn strings_bools_arrays_and_missing() {
    let f = file();
    assert_eq!(f.get_str("name").unwrap(), "qwen2");
    assert!(f.get_bool("flag").unwrap());
    assert!(matches!(
        f.get_u32("name"),
        Err(GgufError::WrongType {
            expected: "an integer",
            ..
        })
    ));
    assert!(matches!(f.get_str("eps"), Err(GgufError::WrongType { found, .. }) if found == "f32"));
    assert!(matches!(
        f.get_array("name"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        f.get_bool("name"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(f.get_u32("nope"), Err(GgufError::MissingKey(k)) if k == "nope"));
    assert!(matches!(f.get_str("nope"), Err(GgufError::MissingKey(_))));
    assert!(f.get("nope").is_none());
    assert_eq!(f.metadata().len(), 9);
    assert_eq!(f.metadata()[7].0, "name");
}

#[test]
fn array_getter_and_description() {
    let b = Raw::header(3, 0, 1)
        .kv("a", 9)
        .u32(9)
        .u64(1)
        .u32(5)
        .u64(2)
        .u32(7)
        .u32(8)
        .0;
    let f = GgufFile::from_bytes(b).unwrap();
    let a = f.get_array("a").unwrap();
    assert_eq!(
        a,
        [Value::Array(
            ValueType::I32,
            vec![Value::I32(7), Value::I32(8)]
        )]
    );
    let e = f.get_str("a").unwrap_err();
    assert!(matches!(e, GgufError::WrongType { found, .. } if found == "arr[arr[i32]]"));
}

//! One test per malformed input: each asserts the specific error variant.
//! Files are built byte by byte with `common::Raw` (not the crate's writer).

mod common;

use common::{small_valid_file, Raw};
use shohin_gguf::{GgmlType, GgufError, GgufFile, MAX_ARRAY_DEPTH};

fn err(bytes: Vec<u8>) -> GgufError {
    match GgufFile::from_bytes(bytes) {
        Ok(f) => panic!("accepted a malformed file: {f:?}"),
        Err(e) => e,
    }
}

/// A one-tensor file: `name` with `dims`, type id `ty`, at `offset`,
/// followed by `data_len` bytes of data.
fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    Raw::header(3, 1, 0)
        .tensor("w", dims, ty, offset)
        .pad(32)
        .zeros(data_len)
        .0
}

#[test]
fn small_valid_file_is_accepted() {
    let f = GgufFile::from_bytes(small_valid_file()).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.tensors().len(), 2);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.tensors()[1].offset, 128);
    assert_eq!(f.file_size(), f.data_offset() + 128 + 64);
}

#[test]
fn every_proper_prefix_is_rejected() {
    let full = small_valid_file();
    let f = GgufFile::from_bytes(full.clone()).unwrap();
    let data_start = f.data_offset() as usize;
    for len in 0..full.len() {
        let e = err(full[..len].to_vec());
        let ok = match &e {
            GgufError::Truncated { offset, .. } => (*offset as usize) <= len,
            GgufError::StringTooLong { .. }
            | GgufError::ArrayTooLong { .. }
            | GgufError::TooManyKeys { .. }
            | GgufError::TooManyTensors { .. } => len < data_start,
            GgufError::OffsetPastEnd { .. } | GgufError::TensorPastEnd { .. } => len >= data_start,
            _ => false,
        };
        assert!(ok, "prefix {len}: unexpected {e:?}");
    }
    // The header fields themselves report truncation with what was read.
    match err(full[..10].to_vec()) {
        GgufError::Truncated { what, offset, .. } => {
            assert_eq!((what.as_str(), offset), ("tensor count", 8))
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn bad_magic() {
    let mut b = Raw::header(3, 0, 0).0;
    b[0] = b'X';
    assert!(matches!(err(b), GgufError::BadMagic(m) if &m == b"XGUF"));
}

#[test]
fn bad_versions_are_rejected_and_v2_accepted() {
    for v in [0, 1, 4, 0x0300_0000] {
        assert!(matches!(err(Raw::header(v, 0, 0).0), GgufError::UnsupportedVersion(x) if x == v));
    }
    assert_eq!(
        GgufFile::from_bytes(Raw::header(2, 0, 0).0)
            .unwrap()
            .version(),
        2
    );
}

#[test]
fn huge_tensor_count() {
    for n in [u64::MAX, 1 << 40, 2] {
        let e = err(Raw::header(3, n, 0).zeros(40).0);
        assert!(
            matches!(e, GgufError::TooManyTensors { count, .. } if count == n),
            "{e:?}"
        );
    }
}

#[test]
fn huge_kv_count() {
    for n in [u64::MAX, 1 << 40, 3] {
        let e = err(Raw::header(3, 0, n).zeros(40).0);
        assert!(
            matches!(e, GgufError::TooManyKeys { count, .. } if count == n),
            "{e:?}"
        );
    }
}

#[test]
fn huge_string_length() {
    // In a key.
    let b = Raw::header(3, 0, 1).u64(u64::MAX).zeros(16).0;
    assert!(matches!(
        err(b),
        GgufError::StringTooLong { len: u64::MAX, .. }
    ));
    // In a value: one byte more than the file holds.
    let b = Raw::header(3, 0, 1).kv("k", 8).u64(5).bytes(b"abcd").0;
    let e = err(b);
    assert!(
        matches!(&e, GgufError::StringTooLong { what, len: 5, remaining: 4, .. } if what.contains("'k'")),
        "{e:?}"
    );
    // In a tensor name.
    let b = Raw::header(3, 1, 0).u64(1 << 62).zeros(40).0;
    assert!(matches!(err(b), GgufError::StringTooLong { len, .. } if len == 1 << 62));
}

#[test]
fn huge_array_length() {
    let b = Raw::header(3, 0, 1)
        .kv("arr", 9)
        .u32(0)
        .u64(u64::MAX)
        .zeros(64)
        .0;
    let e = err(b);
    assert!(
        matches!(&e, GgufError::ArrayTooLong { key, len: u64::MAX, .. } if key == "arr"),
        "{e:?}"
    );
    // 3 strings need at least 24 bytes; 23 are left.
    let b = Raw::header(3, 0, 1).kv("s", 9).u32(8).u64(3).zeros(23).0;
    assert!(matches!(
        err(b),
        GgufError::ArrayTooLong {
            len: 3,
            remaining: 23,
            ..
        }
    ));
}

/// `depth` arrays nested, the innermost an empty u8 array.
fn nested(depth: usize) -> Vec<u8> {
    let mut b = Raw::header(3, 0, 1).kv("deep", 9);
    for _ in 1..depth {
        b = b.u32(9).u64(1);
    }
    b.u32(0).u64(0).0
}

#[test]
fn nested_array_too_deep() {
    let ok = GgufFile::from_bytes(nested(MAX_ARRAY_DEPTH)).unwrap();
    let mut v = ok.get("deep").unwrap();
    for _ in 1..MAX_ARRAY_DEPTH {
        v = &v.as_array().unwrap()[0];
    }
    assert_eq!(v.as_array().unwrap().len(), 0);
    let e = err(nested(MAX_ARRAY_DEPTH + 1));
    assert!(
        matches!(&e, GgufError::NestingTooDeep { key, .. } if key == "deep"),
        "{e:?}"
    );
}

#[test]
fn n_dims_zero_or_five() {
    for dims in [&[][..], &[1, 1, 1, 1, 1][..]] {
        let e = err(one_tensor(dims, 0, 0, 64));
        assert!(
            matches!(&e, GgufError::BadDimCount { tensor, n_dims } if tensor == "w" && *n_dims == dims.len() as u64),
            "{e:?}"
        );
    }
}

#[test]
fn zero_dim() {
    let e = err(one_tensor(&[4, 0, 2], 0, 0, 64));
    assert!(
        matches!(&e, GgufError::ZeroDim { tensor, axis: 1 } if tensor == "w"),
        "{e:?}"
    );
}

#[test]
fn overflowing_dims_product() {
    for dims in [&[1 << 32, 1 << 32][..], &[1 << 62, 2][..], &[u64::MAX][..]] {
        let e = err(one_tensor(dims, 0, 0, 64));
        assert!(
            matches!(e, GgufError::DimsOverflow { .. }),
            "{dims:?}: {e:?}"
        );
    }
    // The element count fits i64 but the F32 byte size does not fit u64.
    let e = err(one_tensor(&[1 << 31, 1 << 31], 0, 0, 64));
    assert!(matches!(e, GgufError::DimsOverflow { .. }), "{e:?}");
}

#[test]
fn unknown_type_id() {
    // 99: not a ggml type; 15: Q8_K, which is not a weight format here.
    for id in [99, 15, u32::MAX] {
        let e = err(one_tensor(&[256], id, 0, 1024));
        assert!(
            matches!(&e, GgufError::UnknownType { tensor, id: x } if tensor == "w" && *x == id),
            "{e:?}"
        );
    }
}

#[test]
fn row_not_a_multiple_of_block_size() {
    // Q8_0 (id 8, 32-weight blocks): 16 x 2 is one whole block, but rows of 16.
    let e = err(one_tensor(&[16, 2], 8, 0, 64));
    assert!(
        matches!(&e, GgufError::RowNotBlockMultiple { tensor, ty: GgmlType::Q8_0, row: 16, block: 32 } if tensor == "w"),
        "{e:?}"
    );
    // Id 42 read as g128 (the g64 size does not fit) with rows of 64.
    let n = 64 * 64; // 64 rows of 64
    let g128 = n / 128 * 34; // 1088 bytes; g64 needs 1152
    let e = err(one_tensor(&[64, 64], 42, 0, g128 as usize));
    assert!(
        matches!(
            e,
            GgufError::RowNotBlockMultiple {
                ty: GgmlType::Q2_0G128,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn misaligned_offset() {
    let e = err(one_tensor(&[4], 0, 8, 64));
    assert!(
        matches!(&e, GgufError::MisalignedOffset { tensor, offset: 8, alignment: 32 } if tensor == "w"),
        "{e:?}"
    );
}

#[test]
fn offset_or_bytes_past_end() {
    let e = err(one_tensor(&[4], 0, 1024, 64));
    assert!(
        matches!(&e, GgufError::OffsetPastEnd { tensor, offset: 1024, data_len: 64 } if tensor == "w"),
        "{e:?}"
    );
    // 32 floats = 128 bytes, 96 present.
    let e = err(one_tensor(&[32], 0, 0, 96));
    assert!(
        matches!(
            e,
            GgufError::TensorPastEnd {
                need: 128,
                available: 96,
                ..
            }
        ),
        "{e:?}"
    );
    // A tensor without its data section at all.
    let b = Raw::header(3, 1, 0).tensor("w", &[4], 0, 0).0;
    assert!(matches!(err(b), GgufError::Truncated { .. }));
}

#[test]
fn overlapping_tensors() {
    // a: 16 floats (64 bytes) at 0; b at 32 starts inside a.
    let b = Raw::header(3, 2, 0)
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 32)
        .pad(32)
        .zeros(128)
        .0;
    let e = err(b);
    assert!(
        matches!(&e, GgufError::Overlap { tensor, other, need: 64, .. } if tensor == "a" && other == "b"),
        "{e:?}"
    );
    // Same offset, listed in reverse offset order.
    let b = Raw::header(3, 2, 0)
        .tensor("a", &[8], 0, 32)
        .tensor("b", &[8], 0, 32)
        .pad(32)
        .zeros(128)
        .0;
    assert!(matches!(err(b), GgufError::Overlap { .. }));
}

#[test]
fn tensors_out_of_offset_order_are_fine() {
    let b = Raw::header(3, 2, 0)
        .tensor("late", &[8], 0, 64)
        .tensor("early", &[16], 0, 0)
        .pad(32)
        .zeros(96)
        .0;
    let f = GgufFile::from_bytes(b).unwrap();
    assert_eq!(f.tensor("early").unwrap().n_bytes, 64);
    assert_eq!(f.tensor_data(f.tensor("late").unwrap()).len(), 32);
}

#[test]
fn duplicate_tensor_name() {
    let b = Raw::header(3, 2, 0)
        .tensor("a", &[8], 0, 0)
        .tensor("a", &[8], 0, 32)
        .pad(32)
        .zeros(64)
        .0;
    assert!(matches!(err(b), GgufError::DuplicateTensor(n) if n == "a"));
}

#[test]
fn duplicate_key() {
    let b = Raw::header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2).0;
    assert!(matches!(err(b), GgufError::DuplicateKey(k) if k == "k"));
}

#[test]
fn empty_key() {
    let b = Raw::header(3, 0, 1).kv_u32("", 1).0;
    assert!(matches!(err(b), GgufError::EmptyKey { index: 0 }));
}

#[test]
fn invalid_utf8_key() {
    let b = Raw::header(3, 0, 2)
        .kv_u32("ok", 1)
        .string(b"bad\xff")
        .u32(4)
        .u32(1)
        .0;
    let e = err(b);
    assert!(
        matches!(&e, GgufError::InvalidUtf8Key { index: 1, lossy, .. } if lossy == "bad\u{fffd}"),
        "{e:?}"
    );
}

#[test]
fn invalid_utf8_string_value() {
    let b = Raw::header(3, 0, 1).kv("name", 8).string(b"\xc3(").0;
    assert!(matches!(err(b), GgufError::InvalidUtf8Value { key, .. } if key == "name"));
    // Inside an array of strings.
    let b = Raw::header(3, 0, 1)
        .kv("toks", 9)
        .u32(8)
        .u64(2)
        .string(b"a")
        .string(b"\xed\xa0\x80") // a UTF-16 surrogate
        .0;
    assert!(matches!(err(b), GgufError::InvalidUtf8Value { key, .. } if key == "toks"));
    let b = Raw::header(3, 1, 0).tensor("\u{e9}", &[8], 0, 0).0;
    let mut b = b;
    b[32] = 0xff; // the name's first byte (after header and u64 length)
    assert!(matches!(
        err(b),
        GgufError::InvalidUtf8TensorName { index: 0, .. }
    ));
}

#[test]
fn unknown_value_type_and_bad_bool() {
    let b = Raw::header(3, 0, 1).kv("k", 13).u32(0).0;
    assert!(matches!(err(b), GgufError::UnknownValueType { key, id: 13, .. } if key == "k"));
    let b = Raw::header(3, 0, 1).kv("k", 9).u32(77).u64(0).0;
    assert!(matches!(err(b), GgufError::UnknownValueType { id: 77, .. }));
    let b = Raw::header(3, 0, 1).kv("flag", 7).u8(2).0;
    assert!(matches!(err(b), GgufError::InvalidBool { key, byte: 2, .. } if key == "flag"));
}

#[test]
fn alignment_zero_or_not_power_of_two() {
    for a in [0, 48, 3] {
        let b = Raw::header(3, 0, 1).kv_u32("general.alignment", a).0;
        assert!(matches!(err(b), GgufError::BadAlignment(x) if x == a as u64));
    }
    // Alignment 1 and 256 are fine.
    for a in [1u32, 256] {
        let b = Raw::header(3, 1, 1)
            .kv_u32("general.alignment", a)
            .tensor("w", &[4], 0, 0)
            .pad(a as usize)
            .zeros(16)
            .0;
        let f = GgufFile::from_bytes(b).unwrap();
        assert_eq!(f.alignment(), a as u64);
        assert_eq!(f.data_offset() % a as u64, 0);
    }
}

#[test]
fn alignment_of_wrong_type() {
    let b = Raw::header(3, 0, 1).kv("general.alignment", 10).u64(32).0;
    let e = err(b);
    assert!(
        matches!(&e, GgufError::WrongType { key, expected: "u32", found } if key == "general.alignment" && found == "u64"),
        "{e:?}"
    );
}

//! Property: random metadata (every type, nested arrays) and random small
//! tensors, written then read, come back equal; writing what was read gives
//! the same bytes again.

use proptest::prelude::*;
use proptest::sample::select;
use shohin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType, ALL_VALUE_TYPES};

/// A value of type `ty`; arrays nest up to 3 levels, floats come from raw
/// bits so NaNs and infinities are covered.
fn value_of(ty: ValueType, depth: u32) -> BoxedStrategy<Value> {
    match ty {
        ValueType::U8 => any::<u8>().prop_map(Value::U8).boxed(),
        ValueType::I8 => any::<i8>().prop_map(Value::I8).boxed(),
        ValueType::U16 => any::<u16>().prop_map(Value::U16).boxed(),
        ValueType::I16 => any::<i16>().prop_map(Value::I16).boxed(),
        ValueType::U32 => any::<u32>().prop_map(Value::U32).boxed(),
        ValueType::I32 => any::<i32>().prop_map(Value::I32).boxed(),
        ValueType::U64 => any::<u64>().prop_map(Value::U64).boxed(),
        ValueType::I64 => any::<i64>().prop_map(Value::I64).boxed(),
        ValueType::F32 => any::<u32>()
            .prop_map(|b| Value::F32(f32::from_bits(b)))
            .boxed(),
        ValueType::F64 => any::<u64>()
            .prop_map(|b| Value::F64(f64::from_bits(b)))
            .boxed(),
        ValueType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        ValueType::String => "\\PC{0,12}".prop_map(Value::String).boxed(),
        ValueType::Array => {
            let elems: Vec<ValueType> = ALL_VALUE_TYPES
                .into_iter()
                .filter(|&t| depth < 2 || t != ValueType::Array)
                .collect();
            select(elems)
                .prop_flat_map(move |elem| {
                    prop::collection::vec(value_of(elem, depth + 1), 0..5)
                        .prop_map(move |items| Value::Array(elem, items))
                })
                .boxed()
        }
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    select(ALL_VALUE_TYPES.to_vec()).prop_flat_map(|t| value_of(t, 0))
}

/// Bitwise equality (NaN == NaN with the same payload).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(s, xs), Value::Array(t, ys)) => {
            s == t && xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        _ => a == b,
    }
}

/// Formats whose id alone names them (id 42 g128 is covered in tests/writer.rs).
const TYPES: [GgmlType; 15] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::PQ2_0,
    GgmlType::PTQ1_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

/// (type, dims, data): rows of 1-2 blocks, up to 4 dims of 1-3.
fn any_tensor() -> impl Strategy<Value = (GgmlType, Vec<u64>, Vec<u8>)> {
    (
        select(TYPES.to_vec()),
        1..3u64,
        prop::collection::vec(1..4u64, 0..4),
    )
        .prop_flat_map(|(ty, blocks, rest)| {
            let mut dims = vec![blocks * ty.block_size() as u64];
            dims.extend(rest);
            let n: u64 = dims.iter().product();
            let len = ty.bytes_for(n).unwrap() as usize;
            prop::collection::vec(any::<u8>(), len).prop_map(move |data| (ty, dims.clone(), data))
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn write_read_write_is_identity(
        kvs in prop::collection::btree_map("[a-z]{1,6}(\\.\\PC{1,8})?", any_value(), 0..8),
        alignment in prop::option::of(0..9u32),
        tensors in prop::collection::vec(any_tensor(), 0..5),
    ) {
        let mut meta: Vec<(String, Value)> = kvs.into_iter().collect();
        if let Some(a) = alignment {
            meta.push(("general.alignment".into(), Value::U32(1 << a)));
        }
        let mut w = GgufWriter::new(meta.clone());
        for (i, (ty, dims, data)) in tensors.iter().enumerate() {
            w.add_tensor(format!("blk.{i}.{ty}"), dims.clone(), *ty, &data[..]);
        }
        let mut bytes = Vec::new();
        let n = w.write_to(&mut bytes).unwrap();
        prop_assert_eq!(n, bytes.len() as u64);
        let f = GgufFile::from_bytes(bytes.clone()).unwrap();
        prop_assert_eq!(f.version(), 3);
        prop_assert_eq!(f.alignment(), 1u64 << alignment.unwrap_or(5));
        prop_assert_eq!(f.metadata().len(), meta.len());
        for ((k, v), (k2, v2)) in f.metadata().iter().zip(&meta) {
            prop_assert_eq!(k, k2);
            prop_assert!(same(v, v2), "{}: {:?} != {:?}", k, v, v2);
        }
        prop_assert_eq!(f.tensors().len(), tensors.len());
        for (t, (ty, dims, data)) in f.tensors().iter().zip(&tensors) {
            prop_assert_eq!(t.ggml_type, *ty);
            prop_assert_eq!(&t.dims, dims);
            prop_assert_eq!(t.offset % f.alignment(), 0);
            prop_assert_eq!(f.tensor_data(t), &data[..]);
        }
        let mut again = Vec::new();
        GgufWriter::from_file(&f).write_to(&mut again).unwrap();
        prop_assert!(again == bytes, "rewrite differs");
    }
}

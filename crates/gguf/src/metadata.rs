//! Reading the key-value section (gguf.md "File Structure": `gguf_metadata_kv_t`
//! = key string, u32 value type, value; an array value is u32 element type,
//! u64 count, then the elements without their own type tags). gguf.cpp reads
//! the same layout but rejects arrays of arrays; gguf-py reads them, so they
//! are accepted here, to [`MAX_ARRAY_DEPTH`] levels.

use std::collections::HashMap;

use crate::cursor::Cursor;
use crate::{GgufError, Value, ValueType};

/// The deepest nesting of arrays accepted (an array of arrays is depth 2).
/// Real files use depth 1; the limit bounds recursion on hostile input.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// The fewest bytes one key-value pair takes: u64 key length, a non-empty
/// key, u32 value type, a one-byte value.
pub(crate) const MIN_KV_SIZE: u64 = 8 + 1 + 4 + 1;

/// Metadata in file order, and the index of each key in it.
pub(crate) type Metadata = (Vec<(String, Value)>, HashMap<String, usize>);

/// Reads `n_kv` pairs; `n_kv` has been checked against the bytes left.
pub(crate) fn read_metadata(c: &mut Cursor<'_>, n_kv: u64) -> Result<Metadata, GgufError> {
    let cap = usize::try_from(n_kv.min(c.remaining() / MIN_KV_SIZE)).unwrap_or(0);
    let mut kvs = Vec::with_capacity(cap);
    let mut index = HashMap::with_capacity(cap);
    for i in 0..n_kv {
        let (kb, offset) = c.string_bytes(|| format!("key of metadata pair #{i}"))?;
        let key = match std::str::from_utf8(kb) {
            Ok(k) => k.to_owned(),
            Err(_) => {
                return Err(GgufError::InvalidUtf8Key {
                    index: i,
                    offset,
                    lossy: String::from_utf8_lossy(kb).into_owned(),
                })
            }
        };
        if key.is_empty() {
            return Err(GgufError::EmptyKey { index: i });
        }
        if index.contains_key(&key) {
            return Err(GgufError::DuplicateKey(key));
        }
        let ty = read_type(c, &key, || format!("value type of key '{key}'"))?;
        let value = read_value(c, ty, &key, 0)?;
        index.insert(key.clone(), kvs.len());
        kvs.push((key, value));
    }
    Ok((kvs, index))
}

fn read_type(
    c: &mut Cursor<'_>,
    key: &str,
    what: impl FnOnce() -> String,
) -> Result<ValueType, GgufError> {
    let offset = c.pos();
    let id = c.u32(what)?;
    ValueType::from_id(id).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_owned(),
        id,
        offset,
    })
}

/// One value of type `ty`; `depth` is the number of enclosing arrays.
fn read_value(
    c: &mut Cursor<'_>,
    ty: ValueType,
    key: &str,
    depth: usize,
) -> Result<Value, GgufError> {
    let what = || format!("{ty} value of key '{key}'");
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8(what)?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array(what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(what)?)),
        ValueType::U32 => Value::U32(c.u32(what)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(what)?)),
        ValueType::U64 => Value::U64(c.u64(what)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(what)?)),
        ValueType::Bool => {
            let offset = c.pos();
            // gguf.cpp stores bool as one byte; only 0 and 1 round-trip.
            match c.u8(what)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                byte => {
                    return Err(GgufError::InvalidBool {
                        key: key.to_owned(),
                        byte,
                        offset,
                    })
                }
            }
        }
        ValueType::String => {
            let (b, offset) = c.string_bytes(what)?;
            match std::str::from_utf8(b) {
                Ok(s) => Value::String(s.to_owned()),
                Err(_) => {
                    return Err(GgufError::InvalidUtf8Value {
                        key: key.to_owned(),
                        offset,
                    })
                }
            }
        }
        ValueType::Array => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::NestingTooDeep {
                    key: key.to_owned(),
                    max: MAX_ARRAY_DEPTH,
                });
            }
            let elem = read_type(c, key, || format!("array element type of key '{key}'"))?;
            let offset = c.pos();
            let len = c.u64(|| format!("array length of key '{key}'"))?;
            // Reject before allocating: `len` elements need at least
            // `len * min_payload_size` bytes.
            let remaining = c.remaining();
            if len > remaining / elem.min_payload_size() {
                return Err(GgufError::ArrayTooLong {
                    key: key.to_owned(),
                    elem,
                    offset,
                    len,
                    remaining,
                });
            }
            let mut items = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            for _ in 0..len {
                items.push(read_value(c, elem, key, depth + 1)?);
            }
            Value::Array(elem, items)
        }
    })
}

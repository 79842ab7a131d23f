//! An ONNX model file and its initializers' bytes: inline `raw_data`, the
//! typed `*_data` fields, or external data (memory-mapped files next to the
//! model), every offset and length checked against the file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use prost::Message;

use super::proto::{dtype, ModelProto, TensorProto, LOCATION_EXTERNAL};
use crate::{file_err, ConvertError};

/// A decoded model and the external-data files it refers to.
pub(crate) struct Store {
    pub(crate) path: PathBuf,
    pub(crate) model: ModelProto,
    /// External-data files by their `location`, mapped on first use.
    maps: HashMap<String, memmap2::Mmap>,
}

fn tensor_err(t: &TensorProto, msg: impl ToString) -> ConvertError {
    ConvertError::Tensor {
        tensor: t.name.clone(),
        msg: msg.to_string(),
    }
}

/// The element count of `dims`; an error for a negative dimension or an
/// overflow.
pub(crate) fn numel(t: &TensorProto) -> Result<usize, ConvertError> {
    t.dims.iter().try_fold(1usize, |acc, &d| {
        let d = usize::try_from(d).map_err(|_| tensor_err(t, format!("negative dimension {d}")))?;
        acc.checked_mul(d)
            .ok_or_else(|| tensor_err(t, format!("dims {:?} overflow", t.dims)))
    })
}

/// The byte size of a tensor of a type in [`dtype::size`].
pub(crate) fn nbytes(t: &TensorProto) -> Result<usize, ConvertError> {
    let size = dtype::size(t.data_type).ok_or_else(|| {
        tensor_err(
            t,
            format!("{} is not supported here", dtype::name(t.data_type)),
        )
    })?;
    numel(t)?
        .checked_mul(size)
        .ok_or_else(|| tensor_err(t, format!("dims {:?} overflow", t.dims)))
}

/// A relative path below the model's directory (no `..`, not absolute).
fn safe_location(loc: &str) -> bool {
    let p = Path::new(loc);
    !loc.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

impl Store {
    /// Reads and decodes `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, ConvertError> {
        let file = std::fs::File::open(path).map_err(|e| file_err(path, e))?;
        // SAFETY: read-only mapping; as every mmap-based reader, this assumes
        // the file is not truncated while it is converted.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| file_err(path, e))?;
        let model = ModelProto::decode(&map[..])
            .map_err(|e| file_err(path, format!("not a valid ONNX model: {e}")))?;
        if model.graph.is_none() {
            return Err(file_err(path, "not a valid ONNX model: no graph"));
        }
        Ok(Store {
            path: path.to_owned(),
            model,
            maps: HashMap::new(),
        })
    }

    /// Maps the external-data files of every initializer and checks each
    /// tensor's `offset` / `length` against its file.
    pub(crate) fn map_external(&mut self) -> Result<(), ConvertError> {
        let dir = self.path.parent().unwrap_or(Path::new(".")).to_owned();
        let graph = self.model.graph.as_ref().expect("checked in open");
        for t in &graph.initializer {
            if t.data_location != LOCATION_EXTERNAL {
                continue;
            }
            let (loc, _, _) = external(t)?;
            if self.maps.contains_key(&loc) {
                continue;
            }
            let p = dir.join(&loc);
            let file = std::fs::File::open(&p)
                .map_err(|e| tensor_err(t, format!("external data {}: {e}", p.display())))?;
            // SAFETY: as in `open`.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| file_err(&p, e))?;
            self.maps.insert(loc, map);
        }
        Ok(())
    }

    /// The raw little-endian bytes of `t` (a type of [`dtype::size`]), of
    /// exactly the size its dims and type give.
    pub(crate) fn bytes<'s>(&'s self, t: &'s TensorProto) -> Result<Cow<'s, [u8]>, ConvertError> {
        let need = nbytes(t)?;
        if t.data_location == LOCATION_EXTERNAL {
            let (loc, offset, length) = external(t)?;
            let map = self
                .maps
                .get(&loc)
                .ok_or_else(|| tensor_err(t, format!("external data {loc:?} is not mapped")))?;
            let length = length.unwrap_or(need);
            if length != need {
                return Err(tensor_err(
                    t,
                    format!(
                        "external data length {length} is not the {need} bytes of {} {:?}",
                        dtype::name(t.data_type),
                        t.dims
                    ),
                ));
            }
            let end = offset.checked_add(need).filter(|&e| e <= map.len());
            let end = end.ok_or_else(|| {
                tensor_err(
                    t,
                    format!(
                        "external data {loc:?}: bytes {offset}..{offset}+{need} are past its end ({} bytes)",
                        map.len()
                    ),
                )
            })?;
            return Ok(Cow::Borrowed(&map[offset..end]));
        }
        if !t.raw_data.is_empty() || need == 0 {
            if t.raw_data.len() != need {
                return Err(tensor_err(
                    t,
                    format!(
                        "raw_data holds {} bytes, {} {:?} needs {need}",
                        t.raw_data.len(),
                        dtype::name(t.data_type),
                        t.dims
                    ),
                ));
            }
            return Ok(Cow::Borrowed(&t.raw_data));
        }
        let n = numel(t)?;
        let count = |len: usize, field: &str| {
            if len == n {
                Ok(())
            } else {
                Err(tensor_err(
                    t,
                    format!("{field} holds {len} values, dims {:?} need {n}", t.dims),
                ))
            }
        };
        // the count is checked before allocating: `need` is then bounded by
        // the decoded data
        let out: Vec<u8> = match t.data_type {
            dtype::FLOAT => {
                count(t.float_data.len(), "float_data")?;
                t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
            }
            dtype::UINT8 => {
                count(t.int32_data.len(), "int32_data")?;
                t.int32_data.iter().map(|&v| v as u8).collect()
            }
            _ => {
                count(t.int32_data.len(), "int32_data")?;
                t.int32_data
                    .iter()
                    .flat_map(|&v| (v as u16).to_le_bytes())
                    .collect()
            }
        };
        Ok(Cow::Owned(out))
    }
}

/// `location`, `offset` and `length` of an external tensor.
fn external(t: &TensorProto) -> Result<(String, usize, Option<usize>), ConvertError> {
    let mut loc = None;
    let mut offset = 0usize;
    let mut length = None;
    for e in &t.external_data {
        let num = || {
            e.value.parse::<usize>().map_err(|_| {
                tensor_err(
                    t,
                    format!("external data {}: {:?} is not a byte count", e.key, e.value),
                )
            })
        };
        match e.key.as_str() {
            "location" => loc = Some(e.value.clone()),
            "offset" => offset = num()?,
            "length" => length = Some(num()?),
            _ => {}
        }
    }
    let loc = loc.ok_or_else(|| tensor_err(t, "external data without a location"))?;
    if !safe_location(&loc) {
        return Err(tensor_err(
            t,
            format!("external data location {loc:?} is not a relative path below the model"),
        ));
    }
    Ok((loc, offset, length))
}

#[cfg(test)]
mod tests {
    use super::super::proto::StringStringEntryProto;
    use super::*;

    fn store() -> Store {
        Store {
            path: PathBuf::from("m.onnx"),
            model: ModelProto::default(),
            maps: HashMap::new(),
        }
    }

    #[test]
    fn sizes_are_checked_before_anything_is_allocated_or_read() {
        let s = store();
        // huge dims, a few values: an error, no allocation of the dims' size
        let t = TensorProto {
            name: "w".into(),
            dims: vec![1 << 40, 1 << 20],
            data_type: dtype::FLOAT,
            float_data: vec![1.0; 4],
            ..Default::default()
        };
        let e = s.bytes(&t).unwrap_err().to_string();
        assert!(e.contains("float_data holds 4 values"), "{e}");
        let t = TensorProto {
            dims: vec![i64::MAX, 4],
            ..t
        };
        assert!(s.bytes(&t).unwrap_err().to_string().contains("overflow"));
        let t = TensorProto {
            dims: vec![-1, 4],
            ..t
        };
        assert!(s.bytes(&t).unwrap_err().to_string().contains("negative"));
        // raw_data of the wrong length
        let t = TensorProto {
            name: "r".into(),
            dims: vec![3],
            data_type: dtype::FLOAT16,
            raw_data: vec![0; 5],
            ..Default::default()
        };
        assert!(s
            .bytes(&t)
            .unwrap_err()
            .to_string()
            .contains("raw_data holds 5 bytes"));
        // int32_data of float16 bit patterns
        let t = TensorProto {
            raw_data: Vec::new(),
            int32_data: vec![0x3c00, 0x4000, 0xc000],
            ..t
        };
        assert_eq!(
            &*s.bytes(&t).unwrap(),
            &[0x00, 0x3c, 0x00, 0x40, 0x00, 0xc0]
        );
        // an external tensor whose file was never mapped, or outside the dir
        let ext = |loc: &str| TensorProto {
            name: "e".into(),
            dims: vec![2],
            data_type: dtype::UINT8,
            data_location: LOCATION_EXTERNAL,
            external_data: vec![StringStringEntryProto {
                key: "location".into(),
                value: loc.into(),
            }],
            ..Default::default()
        };
        assert!(s.bytes(&ext("d.bin")).is_err());
        for bad in ["../d.bin", "/etc/passwd", ""] {
            let e = s.bytes(&ext(bad)).unwrap_err().to_string();
            assert!(
                e.contains("not a relative path below the model") || e.contains("without"),
                "{e}"
            );
        }
    }
}

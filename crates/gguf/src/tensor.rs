//! Tensor descriptors (gguf.md `gguf_tensor_info_t`: name string, u32 n_dims,
//! u64 dims[n_dims], u32 ggml type, u64 offset into the data section) and the
//! checks that place each tensor's bytes inside the file.

use std::collections::HashMap;

pub use shohin_quant::GgmlType;

use crate::cursor::Cursor;
use crate::GgufError;

/// `GGML_MAX_DIMS` (ggml.h).
pub const MAX_DIMS: usize = 4;

/// The fewest bytes one tensor info takes: u64 name length, u32 n_dims, one
/// u64 dim, u32 type, u64 offset.
pub(crate) const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 8 + 4 + 8;

/// One tensor's descriptor. `offset` is relative to the start of the data
/// section; `n_bytes` = f(ggml_type, dims), checked to lie inside the file.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the row length (contiguous).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// A tensor info as read, before its type id is resolved against its slot.
pub(crate) struct RawTensor {
    name: String,
    dims: Vec<u64>,
    type_id: u32,
    offset: u64,
    n_elements: u64,
}

/// Checks a shape the way gguf.cpp does (n_dims in 1..=GGML_MAX_DIMS, element
/// count representable as ggml's int64 `ne`) and also rejects zero dims,
/// which ggml allows but no weight needs. Returns the element count.
pub(crate) fn check_dims(tensor: &str, dims: &[u64]) -> Result<u64, GgufError> {
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(GgufError::BadDimCount {
            tensor: tensor.to_owned(),
            n_dims: dims.len() as u64,
        });
    }
    if let Some(axis) = dims.iter().position(|&d| d == 0) {
        return Err(GgufError::ZeroDim {
            tensor: tensor.to_owned(),
            axis,
        });
    }
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| GgufError::DimsOverflow {
            tensor: tensor.to_owned(),
            dims: dims.to_vec(),
        })
}

/// Checks that some format for `type_id` has blocks that tile a row
/// (gguf.cpp: "not a multiple of block size"). Unknown ids are rejected.
pub(crate) fn check_type(tensor: &str, type_id: u32, row: u64) -> Result<(), GgufError> {
    let cands = GgmlType::candidates(type_id);
    let Some(&first) = cands.first() else {
        return Err(GgufError::UnknownType {
            tensor: tensor.to_owned(),
            id: type_id,
        });
    };
    if cands
        .iter()
        .any(|t| row.is_multiple_of(t.block_size() as u64))
    {
        Ok(())
    } else {
        Err(GgufError::RowNotBlockMultiple {
            tensor: tensor.to_owned(),
            ty: first,
            row,
            block: first.block_size() as u64,
        })
    }
}

/// Reads `n` tensor infos; `n` has been checked against the bytes left.
pub(crate) fn read_tensor_infos(
    c: &mut Cursor<'_>,
    n: u64,
) -> Result<(Vec<RawTensor>, HashMap<String, usize>), GgufError> {
    let cap = usize::try_from(n.min(c.remaining() / MIN_TENSOR_INFO_SIZE)).unwrap_or(0);
    let mut out = Vec::with_capacity(cap);
    let mut index = HashMap::with_capacity(cap);
    for i in 0..n {
        let (nb, offset) = c.string_bytes(|| format!("name of tensor #{i}"))?;
        let name = std::str::from_utf8(nb)
            .map_err(|_| GgufError::InvalidUtf8TensorName {
                index: i,
                offset,
                lossy: String::from_utf8_lossy(nb).into_owned(),
            })?
            .to_owned();
        if index.contains_key(&name) {
            return Err(GgufError::DuplicateTensor(name));
        }
        let n_dims = c.u32(|| format!("dimension count of tensor '{name}'"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(GgufError::BadDimCount {
                tensor: name,
                n_dims: n_dims.into(),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for axis in 0..n_dims {
            dims.push(c.u64(|| format!("dimension {axis} of tensor '{name}'"))?);
        }
        let n_elements = check_dims(&name, &dims)?;
        let type_id = c.u32(|| format!("type of tensor '{name}'"))?;
        check_type(&name, type_id, dims[0])?;
        let offset = c.u64(|| format!("data offset of tensor '{name}'"))?;
        index.insert(name.clone(), out.len());
        out.push(RawTensor {
            name,
            dims,
            type_id,
            offset,
            n_elements,
        });
    }
    Ok((out, index))
}

/// Resolves each tensor's format from its type id and the bytes up to the
/// next tensor in offset order (or the end of the data section), as
/// [`GgmlType::resolve`] requires for id 42, and checks alignment, bounds and
/// overlap. gguf.cpp demands the canonical layout (each offset = the padded
/// end of the previous tensor); this accepts any non-overlapping aligned
/// layout, and like llama.cpp's loader does not require the last tensor's
/// trailing padding.
pub(crate) fn place_tensors(
    raw: Vec<RawTensor>,
    data_len: u64,
    alignment: u64,
) -> Result<Vec<TensorInfo>, GgufError> {
    for t in &raw {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedOffset {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        if t.offset > data_len {
            return Err(GgufError::OffsetPastEnd {
                tensor: t.name.clone(),
                offset: t.offset,
                data_len,
            });
        }
    }
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by_key(|&i| (raw[i].offset, i));
    let mut types = vec![GgmlType::F32; raw.len()];
    for (k, &i) in order.iter().enumerate() {
        let t = &raw[i];
        let next = order.get(k + 1).map(|&j| &raw[j]);
        // Sorted, and every offset is <= data_len: no underflow.
        let available = next.map_or(data_len, |n| n.offset) - t.offset;
        types[i] = match GgmlType::resolve(t.type_id, t.n_elements, available) {
            Ok(ty) if t.dims[0].is_multiple_of(ty.block_size() as u64) => ty,
            Ok(ty) => {
                return Err(GgufError::RowNotBlockMultiple {
                    tensor: t.name.clone(),
                    ty,
                    row: t.dims[0],
                    block: ty.block_size() as u64,
                })
            }
            Err(_) => return Err(no_fit(t, next, available)),
        };
    }
    Ok(raw
        .into_iter()
        .zip(types)
        .map(|(t, ty)| TensorInfo {
            n_bytes: ty.bytes_for(t.n_elements).unwrap_or(0),
            name: t.name,
            dims: t.dims,
            ggml_type: ty,
            offset: t.offset,
            n_elements: t.n_elements,
        })
        .collect())
}

/// The error for a tensor no candidate format fits: the smallest candidate
/// (whose blocks tile a row) is too big for its slot, or its size overflows.
fn no_fit(t: &RawTensor, next: Option<&RawTensor>, available: u64) -> GgufError {
    let need = GgmlType::candidates(t.type_id)
        .iter()
        .filter(|c| t.dims[0].is_multiple_of(c.block_size() as u64))
        .filter_map(|c| c.bytes_for(t.n_elements))
        .min();
    match (need, next) {
        (None, _) => GgufError::DimsOverflow {
            tensor: t.name.clone(),
            dims: t.dims.clone(),
        },
        (Some(need), Some(o)) => GgufError::Overlap {
            tensor: t.name.clone(),
            offset: t.offset,
            need,
            other: o.name.clone(),
            other_offset: o.offset,
        },
        (Some(need), None) => GgufError::TensorPastEnd {
            tensor: t.name.clone(),
            offset: t.offset,
            need,
            available,
        },
    }
}

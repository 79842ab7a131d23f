//! [`GgufWriter`]: writes GGUF v3 in the canonical layout of gguf.cpp's
//! `gguf_write_out` and gguf-py's `GGUFWriter`: header, metadata, tensor
//! infos, zero padding to the alignment, then each tensor's bytes followed by
//! zero padding to the alignment. Offsets are assigned in tensor order. As in
//! the vocab-only files gguf-py writes, a file without tensors ends right
//! after its metadata (gguf.cpp would pad it; both read the same).
//!
//! Everything the reader would reject is rejected before the first byte is
//! written, so a written file always reads back.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::file::align_up;
use crate::metadata::MAX_ARRAY_DEPTH;
use crate::tensor::{check_dims, check_type};
use crate::{GgmlType, GgufError, GgufFile, Value, ValueType, ALIGNMENT_KEY, DEFAULT_ALIGNMENT};

/// One tensor to write; `data` is borrowed when it comes from a mapped file.
#[derive(Clone)]
pub struct TensorToWrite<'a> {
    pub name: String,
    /// ggml order: dims[0] is the row length.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub data: Cow<'a, [u8]>,
}

impl std::fmt::Debug for TensorToWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorToWrite")
            .field("name", &self.name)
            .field("dims", &self.dims)
            .field("ggml_type", &self.ggml_type)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Builds a GGUF file from metadata and tensors.
#[derive(Clone, Debug)]
pub struct GgufWriter<'a> {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorToWrite<'a>>,
}

const ZEROS: [u8; 64] = [0; 64];

impl<'a> GgufWriter<'a> {
    /// A v3 file with this metadata (in this order) and no tensors yet.
    pub fn new(metadata: Vec<(String, Value)>) -> Self {
        GgufWriter {
            version: crate::GGUF_VERSION,
            metadata,
            tensors: Vec::new(),
        }
    }

    /// Everything of `file` (version, metadata, tensors in file order with
    /// their bytes borrowed from its map): writing it back reproduces a
    /// canonically laid out file byte for byte.
    pub fn from_file(file: &'a GgufFile) -> Self {
        let mut w = Self::new(file.metadata().to_vec());
        w.version = file.version();
        for t in file.tensors() {
            w.add_tensor(
                t.name.clone(),
                t.dims.clone(),
                t.ggml_type,
                file.tensor_data(t),
            );
        }
        w
    }

    /// Write version 2 instead of 3 (same layout for little-endian files).
    pub fn set_version(&mut self, version: u32) -> Result<(), GgufError> {
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        self.version = version;
        Ok(())
    }

    pub fn add_metadata(&mut self, key: impl Into<String>, value: Value) {
        self.metadata.push((key.into(), value));
    }

    /// Appends a tensor; `data` must be exactly its type's size for `dims`
    /// (checked when writing).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: Vec<u64>,
        ggml_type: GgmlType,
        data: impl Into<Cow<'a, [u8]>>,
    ) {
        self.tensors.push(TensorToWrite {
            name: name.into(),
            dims,
            ggml_type,
            data: data.into(),
        });
    }

    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn tensors(&self) -> &[TensorToWrite<'a>] {
        &self.tensors
    }

    /// The alignment in effect, checking `general.alignment` like the reader.
    fn alignment(&self) -> Result<u64, GgufError> {
        match self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT.into()),
            Some((_, Value::U32(a))) if a.is_power_of_two() => Ok((*a).into()),
            Some((_, Value::U32(a))) => Err(GgufError::BadAlignment((*a).into())),
            Some((_, v)) => Err(GgufError::WrongType {
                key: ALIGNMENT_KEY.to_owned(),
                expected: "u32",
                found: v.type_description(),
            }),
        }
    }

    /// Checks everything the reader checks; returns the alignment and each
    /// tensor's offset in the data section.
    fn plan(&self, deferred: bool) -> Result<(u64, Vec<u64>, Vec<u64>), GgufError> {
        let mut keys = HashSet::new();
        for (i, (key, value)) in self.metadata.iter().enumerate() {
            if key.is_empty() {
                return Err(GgufError::EmptyKey { index: i as u64 });
            }
            if !keys.insert(key.as_str()) {
                return Err(GgufError::DuplicateKey(key.clone()));
            }
            check_value(key, value, 0)?;
        }
        let alignment = self.alignment()?;
        let mut names = HashSet::new();
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut needs = Vec::with_capacity(self.tensors.len());
        let mut offset = 0u64;
        for t in &self.tensors {
            if !names.insert(t.name.as_str()) {
                return Err(GgufError::DuplicateTensor(t.name.clone()));
            }
            let n = check_dims(&t.name, &t.dims)?;
            let id = t.ggml_type.id();
            if !GgmlType::candidates(id).contains(&t.ggml_type) {
                return Err(GgufError::UnknownType {
                    tensor: t.name.clone(),
                    id,
                });
            }
            check_type(&t.name, id, t.dims[0])?;
            let block = t.ggml_type.block_size() as u64;
            if t.dims[0] % block != 0 {
                return Err(GgufError::RowNotBlockMultiple {
                    tensor: t.name.clone(),
                    ty: t.ggml_type,
                    row: t.dims[0],
                    block,
                });
            }
            let overflow = || GgufError::DimsOverflow {
                tensor: t.name.clone(),
                dims: t.dims.clone(),
            };
            let need = t.ggml_type.bytes_for(n).ok_or_else(overflow)?;
            let got = t.data.len() as u64;
            if !deferred && got != need {
                return Err(GgufError::DataLength {
                    tensor: t.name.clone(),
                    need,
                    got,
                });
            }
            let slot = align_up(need, alignment).ok_or_else(overflow)?;
            // Id 42 is read as g64 Q2_0 whenever that size fits the slot.
            if t.ggml_type == GgmlType::Q2_0G128
                && GgmlType::Q2_0.bytes_for(n).is_some_and(|b| b <= slot)
            {
                return Err(GgufError::AmbiguousQ2_0 {
                    tensor: t.name.clone(),
                });
            }
            offsets.push(offset);
            needs.push(need);
            offset = offset.checked_add(slot).ok_or_else(overflow)?;
        }
        Ok((alignment, offsets, needs))
    }

    /// Writes the file; returns the number of bytes written. Validates first:
    /// on a validation error nothing has been written.
    pub fn write_to<W: Write>(&self, out: W) -> Result<u64, GgufError> {
        self.write_impl(out, false, |i| {
            Ok::<_, GgufError>(Cow::Borrowed(&*self.tensors[i].data))
        })
    }

    /// Like [`write_to`](Self::write_to), but tensor `i`'s bytes come from
    /// `data(i)` only when the writer reaches it (in tensor order), so a
    /// converter holds one tensor at a time: add the tensors with empty data.
    /// Names, dims and types are validated before the first byte; a produced
    /// tensor of the wrong length is an error (the file is then incomplete).
    pub fn write_streaming<'b, W: Write, E: From<GgufError>>(
        &self,
        out: W,
        data: impl FnMut(usize) -> Result<Cow<'b, [u8]>, E>,
    ) -> Result<u64, E> {
        self.write_impl(out, true, data)
    }

    fn write_impl<'b, W: Write, E: From<GgufError>>(
        &self,
        out: W,
        deferred: bool,
        mut data: impl FnMut(usize) -> Result<Cow<'b, [u8]>, E>,
    ) -> Result<u64, E> {
        let (alignment, offsets, needs) = self.plan(deferred)?;
        let io = |e: std::io::Error| E::from(GgufError::from(e));
        let mut w = Counter {
            inner: BufWriter::with_capacity(1 << 16, out),
            n: 0,
        };
        w.write_all(b"GGUF").map_err(io)?;
        w.write_all(&self.version.to_le_bytes()).map_err(io)?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(&(self.metadata.len() as u64).to_le_bytes())
            .map_err(io)?;
        for (key, value) in &self.metadata {
            write_str(&mut w, key).map_err(io)?;
            w.write_all(&value.value_type().id().to_le_bytes())
                .map_err(io)?;
            write_payload(&mut w, value).map_err(io)?;
        }
        for (t, &offset) in self.tensors.iter().zip(&offsets) {
            write_str(&mut w, &t.name).map_err(io)?;
            w.write_all(&(t.dims.len() as u32).to_le_bytes())
                .map_err(io)?;
            for d in &t.dims {
                w.write_all(&d.to_le_bytes()).map_err(io)?;
            }
            w.write_all(&t.ggml_type.id().to_le_bytes()).map_err(io)?;
            w.write_all(&offset.to_le_bytes()).map_err(io)?;
        }
        if !self.tensors.is_empty() {
            w.pad(alignment).map_err(io)?;
            for (i, t) in self.tensors.iter().enumerate() {
                let bytes = data(i)?;
                if bytes.len() as u64 != needs[i] {
                    return Err(GgufError::DataLength {
                        tensor: t.name.clone(),
                        need: needs[i],
                        got: bytes.len() as u64,
                    }
                    .into());
                }
                w.write_all(&bytes).map_err(io)?;
                w.pad(alignment).map_err(io)?;
            }
        }
        w.inner.flush().map_err(io)?;
        Ok(w.n)
    }

    /// Writes to a new file at `path` (replacing any).
    pub fn write_to_path(&self, path: &Path) -> Result<u64, GgufError> {
        let file = std::fs::File::create(path).map_err(|source| GgufError::Open {
            path: path.to_owned(),
            source,
        })?;
        self.write_to(file)
    }
}

/// Arrays must hold only their declared element type, nest at most
/// [`MAX_ARRAY_DEPTH`] deep, and bools are 0/1 by construction.
fn check_value(key: &str, value: &Value, depth: usize) -> Result<(), GgufError> {
    if let Value::Array(elem, items) = value {
        if depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                key: key.to_owned(),
                max: MAX_ARRAY_DEPTH,
            });
        }
        for item in items {
            if item.value_type() != *elem {
                return Err(GgufError::MixedArray {
                    key: key.to_owned(),
                    declared: *elem,
                    found: item.type_description(),
                });
            }
            if *elem == ValueType::Array {
                check_value(key, item, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Counts bytes written, for padding and the returned size.
struct Counter<W: Write> {
    inner: BufWriter<W>,
    n: u64,
}

impl<W: Write> Counter<W> {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(b)?;
        self.n += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, alignment: u64) -> std::io::Result<()> {
        let mut rem = (alignment - self.n % alignment) % alignment;
        while rem > 0 {
            let k = rem.min(ZEROS.len() as u64);
            self.write_all(&ZEROS[..k as usize])?;
            rem -= k;
        }
        Ok(())
    }
}

fn write_str<W: Write>(w: &mut Counter<W>, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// A value without its type tag (gguf.md `gguf_metadata_value_t`).
fn write_payload<W: Write>(w: &mut Counter<W>, v: &Value) -> std::io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&x.to_le_bytes()),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::String(s) => write_str(w, s),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
        Value::Array(elem, items) => {
            w.write_all(&elem.id().to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|item| write_payload(w, item))
        }
    }
}

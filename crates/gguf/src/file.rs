//! [`GgufFile`]: a parsed, validated GGUF image (memory-mapped or owned).

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::Path;

use crate::cursor::{u64_of, Cursor};
use crate::metadata::{read_metadata, MIN_KV_SIZE};
use crate::tensor::{place_tensors, read_tensor_infos, MIN_TENSOR_INFO_SIZE};
use crate::{GgufError, TensorInfo, Value};

/// `GGUF_MAGIC` (gguf.md: the bytes "GGUF" at offset 0).
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The version written; version 2 (same layout, little-endian only) is also read.
pub const GGUF_VERSION: u32 = 3;
/// `GGUF_DEFAULT_ALIGNMENT` (gguf.md, gguf.cpp).
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// `GGUF_KEY_GENERAL_ALIGNMENT`: a u32 power of two.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The bytes of the file: mapped from disk, or owned (tests, fuzzing).
enum Backing {
    Mmap(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Bytes(b) => b,
        }
    }
}

/// A parsed, validated GGUF file whose tensor data stays memory-mapped.
///
/// Layout (ggml `docs/gguf.md`, reader `ggml/src/gguf.cpp` `gguf_init_from_file_impl`):
/// magic, u32 version, u64 tensor count, u64 metadata count, the metadata
/// pairs, the tensor infos, zero padding to `general.alignment`, then the
/// data section that tensor offsets are relative to.
pub struct GgufFile {
    backing: Backing,
    version: u32,
    alignment: u64,
    data_start: u64,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("metadata_pairs", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("data_offset", &self.data_start)
            .field("file_size", &self.file_size())
            .finish()
    }
}

/// `x` rounded up to a multiple of the power of two `align`; `None` on overflow.
pub(crate) fn align_up(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

impl GgufFile {
    /// Open and validate; the file is memory-mapped, not read.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let open_err = |source| GgufError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let backing = if len == 0 {
            // Mapping an empty file fails on some platforms; nothing to map.
            Backing::Bytes(Vec::new())
        } else {
            // SAFETY: the map is read-only and private to this value. As with
            // every file mapping, another process truncating or rewriting the
            // file while it is mapped is undefined behaviour (SIGBUS or
            // changed bytes); model files are not modified in place.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(open_err)?;
            Backing::Mmap(map)
        };
        Self::parse(backing)
    }

    /// Parse and validate an in-memory image (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::parse(Backing::Bytes(bytes))
    }

    fn parse(backing: Backing) -> Result<Self, GgufError> {
        let buf: &[u8] = &backing;
        let mut c = Cursor::new(buf);
        let magic: [u8; 4] = c.array(|| "magic".to_owned())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = c.u32(|| "version".to_owned())?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = c.u64(|| "tensor count".to_owned())?;
        let n_kv = c.u64(|| "metadata count".to_owned())?;
        let remaining = c.remaining();
        if n_kv > remaining / MIN_KV_SIZE {
            return Err(GgufError::TooManyKeys {
                count: n_kv,
                remaining,
            });
        }
        if n_tensors > remaining / MIN_TENSOR_INFO_SIZE {
            return Err(GgufError::TooManyTensors {
                count: n_tensors,
                remaining,
            });
        }
        let (metadata, key_index) = read_metadata(&mut c, n_kv)?;
        let alignment = match key_index.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(&Value::U32(a)) if a.is_power_of_two() => a,
            Some(&Value::U32(a)) => return Err(GgufError::BadAlignment(a.into())),
            Some(v) => {
                return Err(GgufError::WrongType {
                    key: ALIGNMENT_KEY.to_owned(),
                    expected: "u32",
                    found: v.type_description(),
                })
            }
        };
        let alignment = u64::from(alignment);
        let (raw, tensor_index) = read_tensor_infos(&mut c, n_tensors)?;
        let info_end = c.pos();
        let file_len = u64_of(buf.len());
        let data_start = if n_tensors == 0 {
            // Vocab-only files end after the metadata, without padding.
            info_end
        } else {
            match align_up(info_end, alignment) {
                Some(s) if s <= file_len => s,
                _ => {
                    return Err(GgufError::Truncated {
                        what: "padding before the data section".to_owned(),
                        offset: info_end,
                        need: alignment - info_end % alignment,
                        available: file_len - info_end,
                    })
                }
            }
        };
        let tensors = place_tensors(raw, file_len - data_start, alignment)?;
        Ok(GgufFile {
            backing,
            version,
            alignment,
            data_start,
            metadata,
            key_index,
            tensors,
            tensor_index,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the data section (tensor offsets are relative to it).
    pub fn data_offset(&self) -> u64 {
        self.data_start
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// An integer of any GGUF integer type whose value fits `T` (writers
    /// differ: some store `context_length` as u64 or i32).
    fn get_int<T: TryFrom<i128>>(&self, key: &str, target: &'static str) -> Result<T, GgufError> {
        let v = self.require(key)?;
        let Some(i) = v.as_i128() else {
            return Err(GgufError::WrongType {
                key: key.to_owned(),
                expected: "an integer",
                found: v.type_description(),
            });
        };
        T::try_from(i).map_err(|_| GgufError::OutOfRange {
            key: key.to_owned(),
            value: i.to_string(),
            target,
        })
    }

    /// Typed getters: Err(MissingKey) / Err(WrongType{key, expected, found}).
    /// Accepts any integer type whose value fits; Err(OutOfRange) otherwise.
    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.get_int(key, "u32")
    }

    /// As [`Self::get_u32`], for `u64`.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_int(key, "u64")
    }

    /// As [`Self::get_u32`], for `i64`.
    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.get_int(key, "i64")
    }

    /// `F32`, or `F64` whose value is finite as an `f32` (or was not finite).
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        match *self.require(key)? {
            Value::F32(x) => Ok(x),
            Value::F64(x) => {
                let y = x as f32;
                if y.is_finite() || !x.is_finite() {
                    Ok(y)
                } else {
                    Err(GgufError::OutOfRange {
                        key: key.to_owned(),
                        value: x.to_string(),
                        target: "f32",
                    })
                }
            }
            ref v => Err(self.wrong(key, "f32 or f64", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| self.wrong(key, "bool", v))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "str", v))
    }

    pub fn get_array(&self, key: &str) -> Result<&[Value], GgufError> {
        let v = self.require(key)?;
        v.as_array().ok_or_else(|| self.wrong(key, "arr", v))
    }

    fn wrong(&self, key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.to_owned(),
            expected,
            found: found.type_description(),
        }
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Tells the OS that the tensor's mapped pages will not be read again
    /// soon (a backend copied them into its own layout): they leave the
    /// resident set and are read back from the file if touched later
    /// (`madvise(MADV_DONTNEED)` on a read-only private mapping). A no-op
    /// for in-memory files and off Unix; the hint's failure is ignored
    /// because nothing depends on it but memory use.
    pub fn release(&self, t: &TensorInfo) {
        #[cfg(unix)]
        if let Backing::Mmap(map) = &self.backing {
            let data = self.tensor_data(t);
            let off = data.as_ptr() as usize - map.as_ptr() as usize;
            // SAFETY: the map is read-only and private, and the file is
            // never written through it, so dropping its pages changes no
            // byte that a live `&[u8]` into it can observe: the next read
            // faults the same file contents back in.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, data.len())
            };
        }
        #[cfg(not(unix))]
        let _ = t;
    }

    /// The tensor's bytes (exactly `n_bytes`), zero-copy from the map.
    ///
    /// # Panics
    /// If `t` does not lie inside this file (a `TensorInfo` of another file).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let range = self
            .data_start
            .checked_add(t.offset)
            .and_then(|s| Some(s..s.checked_add(t.n_bytes)?))
            .and_then(|r| Some(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?))
            .and_then(|r| self.backing.get(r));
        match range {
            Some(b) => b,
            None => panic!("tensor '{}' is not inside this GGUF file", t.name),
        }
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        u64_of(self.backing.len())
    }

    /// The whole file image.
    pub fn as_bytes(&self) -> &[u8] {
        &self.backing
    }
}

#[cfg(test)]
mod tests {
    use super::align_up;

    #[test]
    fn align_up_rounds_and_reports_overflow() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(1, 32), Some(32));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(65, 1), Some(65));
        assert_eq!(align_up(u64::MAX - 3, 32), None);
    }
}

//! Bounds-checked little-endian reads over the file image. Every read names
//! what it was reading (built lazily, only on error) so that a truncated file
//! reports the field and offset at which it ended.

use crate::GgufError;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// `usize` → `u64`; lossless on every platform Rust supports (usize ≤ 64 bits).
pub(crate) fn u64_of(n: usize) -> u64 {
    n as u64
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// Current absolute offset in the file.
    pub(crate) fn pos(&self) -> u64 {
        u64_of(self.pos)
    }

    /// Bytes left after the current position.
    pub(crate) fn remaining(&self) -> u64 {
        u64_of(self.buf.len() - self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(
        &mut self,
        n: u64,
        what: impl FnOnce() -> String,
    ) -> Result<&'a [u8], GgufError> {
        let rest = &self.buf[self.pos..];
        match usize::try_from(n) {
            Ok(n) if n <= rest.len() => {
                self.pos += n;
                Ok(&rest[..n])
            }
            _ => Err(GgufError::Truncated {
                what: what(),
                offset: self.pos(),
                need: n,
                available: self.remaining(),
            }),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<[u8; N], GgufError> {
        let b = self.bytes(u64_of(N), what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: impl FnOnce() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string (gguf.md `gguf_string_t`: u64 length, then that many
    /// bytes, no NUL). Returns the bytes and the offset of the length field.
    /// A length larger than the rest of the file is rejected before any
    /// allocation.
    pub(crate) fn string_bytes(
        &mut self,
        what: impl Fn() -> String,
    ) -> Result<(&'a [u8], u64), GgufError> {
        let offset = self.pos();
        let len = self.u64(|| format!("length of {}", what()))?;
        if len > self.remaining() {
            return Err(GgufError::StringTooLong {
                what: what(),
                offset,
                len,
                remaining: self.remaining(),
            });
        }
        let b = self.bytes(len, &what)?;
        Ok((b, offset))
    }
}

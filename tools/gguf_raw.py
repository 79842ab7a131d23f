"""Minimal GGUF v3 writer and reader (pure Python + numpy), written from the
format as ggml's gguf.cpp reads and writes it (llama.cpp tree:
ggml/include/gguf.h `enum gguf_type`, ggml/src/gguf.cpp `gguf_init_from_file_impl`
and `gguf_write_to_buf`):

    magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
    n_kv x (string key | u32 value type | value)
    n_tensors x (string name | u32 n_dims | u64 dims[n_dims] | u32 ggml type | u64 offset)
    zero padding to `general.alignment` (default 32)
    tensor data, each tensor at its offset (relative to the data start), each
    padded with zeros to the alignment

Strings are u64 length + UTF-8 bytes; arrays are u32 element type + u64 count
+ elements. Everything is little-endian.

Why not gguf-py: its GGML_QUANT_SIZES table maps type 42 to the upstream
64-weight Q2_0 block and knows nothing of type 142, so it cannot write or read
PrismML's 128-weight ternary layout. This module never interprets tensor
bytes; the byte count of each tensor is given by the caller (writer) or
inferred from the slot it occupies (reader), see `ggml_formats.resolve`.
"""

import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# gguf.h enum gguf_type
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
           F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


def _align(n, a):
    return (n + a - 1) // a * a


class Writer:
    """Collects typed metadata and raw tensors, then writes one GGUF v3 file."""

    def __init__(self):
        self.kv = []  # (key, type, value)
        self.tensors = []  # (name, dims (ggml order), type id, bytes)

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def add_tensor(self, name, dims, type_id, data):
        """`dims` in ggml order (dims[0] = row length); `data` raw bytes."""
        self.tensors.append((name, [int(d) for d in dims], int(type_id), bytes(data)))

    def alignment(self):
        for k, _, v in self.kv:
            if k == "general.alignment":
                return int(v)
        return DEFAULT_ALIGNMENT

    @staticmethod
    def _str(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, v):
        if vtype == STRING:
            return self._str(v)
        if vtype == ARRAY:
            etype, items = v
            out = struct.pack("<IQ", etype, len(items))
            return out + b"".join(self._value(etype, x) for x in items)
        return struct.pack(_SCALAR[vtype], v)

    def to_bytes(self):
        a = self.alignment()
        out = bytearray(GGUF_MAGIC + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
        for k, t, v in self.kv:
            out += self._str(k) + struct.pack("<I", t) + self._value(t, v)
        offset = 0
        for name, dims, tid, data in self.tensors:
            out += self._str(name) + struct.pack("<I", len(dims))
            out += b"".join(struct.pack("<Q", d) for d in dims)
            out += struct.pack("<IQ", tid, offset)
            offset = _align(offset + len(data), a)
        out += bytes(_align(len(out), a) - len(out))
        for _, _, _, data in self.tensors:
            out += data + bytes(_align(len(data), a) - len(data))
        return bytes(out)

    def write(self, path):
        b = self.to_bytes()
        with open(path, "wb") as f:
            f.write(b)
        return len(b)


class Tensor:
    def __init__(self, name, dims, type_id, start, slot_end):
        self.name, self.dims, self.type_id = name, dims, type_id
        self.start = start  # absolute file offset
        self.slot_end = slot_end  # next tensor's start, or end of file

    @property
    def n_elements(self):
        return int(np.prod(self.dims, dtype=np.int64))


class Reader:
    """Parses a GGUF v2/v3 file held in memory: `meta` (key -> value, arrays
    as lists) and `tensors` (name -> Tensor with its byte slot)."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        if self.buf[:4] != GGUF_MAGIC:
            raise ValueError(f"{path}: not a GGUF file")
        self.pos = 4
        self.version = self._u("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {self.version}")
        n_tensors, n_kv = self._u("<Q"), self._u("<Q")
        self.meta = {}
        for _ in range(n_kv):
            key = self._s()
            self.meta[key] = self._v(self._u("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self._s()
            dims = [self._u("<Q") for _ in range(self._u("<I"))]
            tid, off = self._u("<I"), self._u("<Q")
            infos.append((name, dims, tid, off))
        a = int(self.meta.get("general.alignment", DEFAULT_ALIGNMENT))
        data_start = _align(self.pos, a)
        ends = sorted(off for _, _, _, off in infos)
        self.tensors = {}
        for name, dims, tid, off in infos:
            later = [e for e in ends if e > off]
            end = data_start + later[0] if later else len(self.buf)
            self.tensors[name] = Tensor(name, dims, tid, data_start + off, end)

    def _u(self, fmt):
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def _s(self):
        n = self._u("<Q")
        s = self.buf[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def _v(self, t):
        if t == STRING:
            return self._s()
        if t == ARRAY:
            et, n = self._u("<I"), self._u("<Q")
            return [self._v(et) for _ in range(n)]
        return self._u(_SCALAR[t])

    def raw(self, t, nbytes):
        """`nbytes` bytes of tensor `t` (checked against its slot)."""
        if t.start + nbytes > t.slot_end:
            raise ValueError(f"{t.name}: needs {nbytes} bytes, slot has {t.slot_end - t.start}")
        return np.frombuffer(self.buf, dtype=np.uint8, count=nbytes, offset=t.start)

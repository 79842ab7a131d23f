#!/usr/bin/env python3
"""Independent reference for tests/fixtures.rs: what gguf-py (llama.cpp's
gguf-py/gguf/gguf_reader.py) reads from each fixture.

Usage: PYTHONPATH=<llama.cpp>/gguf-py python3 gen_golden.py FILE... > golden.json
Per file: version, alignment, data offset, size; per metadata key its type ids,
element count and an FNV-1a 64 hash of the raw value payload (array elements
without the array header); per tensor name, dims, type id, offset relative to
the data section, byte size and the first/last 16 bytes of its data.
"""
import json
import os
import sys

from gguf import GGUFReader

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a(data: bytes) -> str:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return f"{h:016x}"


def describe(path):
    r = GGUFReader(path)
    kvs = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [int(t) for t in f.types]
        if types[0] == 9:  # array: parts = keylen, key, type, elemtype, count, elements...
            payload = b"".join(p.tobytes() for p in f.parts[5:])
            n = int(f.parts[4][0])
        else:
            payload = b"".join(p.tobytes() for p in f.parts[3:])
            n = None
        kvs.append({"key": key, "types": types, "n": n, "fnv": fnv1a(payload)})
    tensors = []
    for t in r.tensors:
        data = t.data.tobytes()
        assert len(data) == int(t.n_bytes)
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": int(t.tensor_type),
            "offset": int(t.data_offset) - int(r.data_offset),
            "n_bytes": int(t.n_bytes),
            "head": data[:16].hex(),
            "tail": data[-16:].hex(),
        })
    return {
        "file": os.path.basename(path),
        "version": int(r.fields["GGUF.version"].parts[-1][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "size": os.path.getsize(path),
        "metadata": kvs,
        "tensors": tensors,
    }


print(json.dumps([describe(p) for p in sys.argv[1:]], indent=1))

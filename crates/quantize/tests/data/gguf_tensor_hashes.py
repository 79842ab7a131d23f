#!/usr/bin/env python3
"""Print a GGUF file's tensors as golden JSON: name, ggml type, sha256 of the
tensor's bytes, plus the whole file's sha256. Standard library only."""
import hashlib
import json
import struct
import sys

# ggml type id -> (name, block size, bytes per block)
TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2),
    2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
}


def main(path, label):
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode()
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert data[:4] == b"GGUF"
    pos = 4
    _version, n_tensors, n_kv = take("I"), take("Q"), take("Q")
    alignment = 32
    for _ in range(n_kv):
        key = string()
        v = value(take("I"))
        if key == "general.alignment":
            alignment = v
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        dims = [take("Q") for _ in range(nd)]
        ty, off = take("I"), take("Q")
        infos.append((name, dims, ty, off))
    base = (pos + alignment - 1) // alignment * alignment
    tensors = []
    for name, dims, ty, off in infos:
        tname, bs, ts = TYPES[ty]
        n = 1
        for d in dims:
            n *= d
        size = n // bs * ts
        blob = data[base + off:base + off + size]
        tensors.append({"name": name, "type": tname,
                        "sha256": hashlib.sha256(blob).hexdigest()})
    out = {"ftype": label, "file_sha256": hashlib.sha256(data).hexdigest(),
           "file_size": len(data), "tensors": tensors}
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

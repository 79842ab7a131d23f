#!/usr/bin/env python3
"""Describes GGUF files as tests/llama.rs's `describe` does: per file, `kv` =
[key, value type id, rendered value] in file order and `tensors` = [name,
ggml type id, dims (ggml order), sha256 of the data] in file order. Numbers
in decimal, f32 / f64 as their bits, strings up to 200 bytes as themselves,
longer strings and arrays (element type id and length) as a sha256 (strings: u64 length + UTF-8 bytes,
numbers: little-endian bytes, bools: one byte).

usage: describe_gguf.py NAME=FILE.gguf ... > out.json (PYTHONPATH: gguf-py)
"""
import hashlib, json, struct, sys
from gguf import GGUFReader, GGUFValueType as T

FMT = {T.UINT8: '<B', T.INT8: '<b', T.UINT16: '<H', T.INT16: '<h', T.UINT32: '<I',
       T.INT32: '<i', T.UINT64: '<Q', T.INT64: '<q', T.FLOAT32: '<f', T.FLOAT64: '<d',
       T.BOOL: '<?'}


def elem_bytes(t, v):
    if t == T.STRING:
        b = v.encode('utf-8') if isinstance(v, str) else bytes(v)
        return struct.pack('<Q', len(b)) + b
    return struct.pack(FMT[t], v)


def render(f):
    t = f.types[0]
    if t == T.ARRAY:
        et = f.types[1] if len(f.types) > 1 else T.UINT8
        vals = f.contents()
        h = hashlib.sha256()
        for v in vals:
            h.update(elem_bytes(et, v))
        return int(t), f'{int(et)}[{len(vals)}]:sha256:{h.hexdigest()}'
    v = f.contents()
    if t == T.FLOAT32:
        return int(t), 'f32:%08x' % struct.unpack('<I', struct.pack('<f', v))[0]
    if t == T.FLOAT64:
        return int(t), 'f64:%016x' % struct.unpack('<Q', struct.pack('<d', v))[0]
    if t == T.BOOL:
        return int(t), 'true' if v else 'false'
    if t == T.STRING:
        b = v.encode('utf-8')
        if len(b) <= 200:
            return int(t), v
        return int(t), 'string:sha256:' + hashlib.sha256(elem_bytes(T.STRING, v)).hexdigest()
    return int(t), str(int(v))


def describe(path):
    r = GGUFReader(path)
    kv = []
    for k, f in r.fields.items():
        if k.startswith('GGUF.'):
            continue
        t, s = render(f)
        kv.append([k, t, s])
    tensors = []
    for t in r.tensors:
        data = t.data.tobytes()
        assert len(data) == t.n_bytes, t.name
        tensors.append([t.name, int(t.tensor_type), [int(d) for d in t.shape],
                        hashlib.sha256(data).hexdigest()])
    return {'kv': kv, 'tensors': tensors}


out = {}
for arg in sys.argv[1:]:
    name, path = arg.split('=', 1)
    out[name] = describe(path)
json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
print()

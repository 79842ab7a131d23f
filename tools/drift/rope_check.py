#!/usr/bin/env python3
"""Which rounding does ggml's NEOX RoPE use? Recompute Qcur/Kcur after RoPE
from llama.cpp's own pre-RoPE tensors with glibc powf/cosf/sinf (ctypes) and
each candidate contraction of x0*c - x1*s (GCC -ffp-contract=fast may fuse
one product into an FMA), compared with the captured result.
usage: rope_check.py LLAMA.npz [layer]"""
import sys, ctypes, numpy as np
f32 = np.float32
m = ctypes.CDLL('libm.so.6')
for fn in ('powf', 'cosf', 'sinf'):
    getattr(m, fn).restype = ctypes.c_float
m.powf.argtypes = [ctypes.c_float, ctypes.c_float]
m.cosf.argtypes = m.sinf.argtypes = [ctypes.c_float]


def fma(a, b, c):  # f32 fma via f64 (exact product; double rounding negligible here)
    return (a.astype(np.float64) * b + c).astype(f32)


d = np.load(sys.argv[1]); il = int(sys.argv[2]) if len(sys.argv) > 2 else 0
hd = 64
ts = f32(m.powf(1000000.0, -2.0 / hd))
for name in ('Qcur', 'Kcur'):
    pre = d[f'{name}-{il}#2'][0]; post = d[f'{name}-{il}#3'][0]   # [n][h][64]
    n = pre.shape[0]
    cos = np.zeros((n, hd // 2), f32); sin = np.zeros((n, hd // 2), f32)
    for p in range(n):
        th = f32(p)
        for i in range(hd // 2):
            cos[p, i] = m.cosf(th); sin[p, i] = m.sinf(th); th = f32(th * ts)
    c = cos[:, None, :]; s = sin[:, None, :]
    x0 = pre[..., :32]; x1 = pre[..., 32:]
    cands = {
        'plain': ((x0 * c - x1 * s).astype(f32), (x0 * s + x1 * c).astype(f32)),
        'fma(x0,c,-x1*s)': (fma(x0, c, -(x1 * s).astype(f32)), fma(x0, s, (x1 * c).astype(f32))),
        'fma(-x1,s,x0*c)': (fma(-x1, s, (x0 * c).astype(f32)), fma(x1, c, (x0 * s).astype(f32))),
        'A:fma(x0,c,..) B:fma(x1,c,..)': (fma(x0, c, -(x1 * s).astype(f32)), fma(x1, c, (x0 * s).astype(f32))),
        'A:fma(-x1,s,..) B:fma(x0,s,..)': (fma(-x1, s, (x0 * c).astype(f32)), fma(x0, s, (x1 * c).astype(f32))),
    }
    for k, (a, b) in cands.items():
        da = (a != post[..., :32]).sum(); db = (b != post[..., 32:]).sum()
        print(name, f'{k:32s}', 'mismatch first half', da, 'second half', db, 'of', a.size)

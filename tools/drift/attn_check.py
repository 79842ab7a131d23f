#!/usr/bin/env python3
"""Re-derive llama.cpp's attention of one layer from its own captured inputs
(Qcur after RoPE, Kcur after RoPE, Vcur) with numpy, op by op, to see which
step of shohin's recipe (f16 q, f32 dot, libm exp, f64 sum, f16 probs)
departs from ggml's.  usage: attn_check.py LLAMA.npz [layer]"""
import sys, numpy as np
d = np.load(sys.argv[1]); il = int(sys.argv[2]) if len(sys.argv) > 2 else 0
q = d[f'Qcur-{il}#3'][0]            # [n][14][64]
k = d[f'Kcur-{il}#3'][0]            # [n][2][64]
v = d[f'Vcur-{il}#1'][0, 0].reshape(k.shape)
kq = d[f'kq-{il}#0'][0]             # [14][n][256]
sm = d[f'kq_soft_max-{il}#0'][0]
kqv = d[f'kqv-{il}#0'][0]           # [14][n][64]
n, H, hd = q.shape
g = H // k.shape[1]
qf = q.astype(np.float16).astype(np.float32)
kf = k.astype(np.float16).astype(np.float32)
vf = v.astype(np.float16).astype(np.float32)
# kq: exact f64 products of f16 values, compare with ggml's f32
mine = np.einsum('thd,shd->hts', qf.astype(np.float64), np.repeat(kf, g, axis=1).astype(np.float64))
print('kq vs exact f64 dot of f16 q,k: max|d|', np.abs(mine - kq[:, :, :n]).max(), 'max', np.abs(kq[:, :, :n]).max())
scale = np.float32(1 / np.sqrt(np.float32(hd)))
mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
s = kq[:, :, :n].astype(np.float32) * scale + mask
mx = s.max(-1, keepdims=True)
e = np.exp((s - mx).astype(np.float64)).astype(np.float32)   # correctly rounded exp
p = (e / e.astype(np.float64).sum(-1, keepdims=True)).astype(np.float32)
dd = np.abs(p - sm[:, :, :n])
print('softmax (exact exp) vs ggml: max|d|', dd.max(), 'nonzero', (dd > 0).sum(), '/', dd.size)
e32 = np.exp((s - mx))  # numpy f32 exp
# relative error of ggml's exp: infer e_ggml = sm * sum
ratio = (sm[:, :, :n].astype(np.float64) / p.astype(np.float64))
print('sm/p ratio range', np.nanmin(ratio[p > 0]), np.nanmax(ratio[p > 0]))
# kqv from ggml's probs: f16(p) * f16(v), f32 sum
pf = sm[:, :, :n].astype(np.float16).astype(np.float64)
mine = np.einsum('hts,shd->htd', pf, np.repeat(vf, g, axis=1).astype(np.float64))
print('kqv vs exact from ggml probs: max|d|', np.abs(mine - kqv).max())

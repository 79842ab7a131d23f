#!/usr/bin/env python3
"""Check the one-token (decode) attention orders against llama.cpp: kq and
kqv of the first generated token (captured with capture_llama.py --steps 1)
recomputed with ggml_vec_dot_f16's AVX-512 order (64 lanes: four 16-lane
accumulators folded 0+2, 1+3, then 0+1, then _mm512_reduce_add_ps).
usage: emulate_decode.py LLAMA_DEC.npz [layer]"""
import sys, numpy as np
from emulate_attn import reduce16
f32 = np.float32


def dot_vec(a, b):  # [..., k] with k % 64 == 0
    k = a.shape[-1]
    acc = np.zeros(np.broadcast_shapes(a.shape, b.shape)[:-1] + (64,), f32)
    for c in range(0, k, 64):
        acc = (acc + (a[..., c:c + 64] * b[..., c:c + 64]).astype(f32)).astype(f32)
    x0 = (acc[..., 0:16] + acc[..., 32:48]).astype(f32)
    x1 = (acc[..., 16:32] + acc[..., 48:64]).astype(f32)
    return reduce16((x0 + x1).astype(f32))


d = np.load(sys.argv[1]); il = int(sys.argv[2]) if len(sys.argv) > 2 else 0
kp = d[f'Kcur-{il}#3'][0]; kd = d[f'Kcur-{il}@0#3'][0]       # [n][2][64], [1][2][64]
vp = d[f'Vcur-{il}#1'][0, 0].reshape(kp.shape); vd = d[f'Vcur-{il}@0#1'][0, 0].reshape(kd.shape)
q = d[f'Qcur-{il}@0#3'][0]                                     # [1][14][64]
kq = d[f'kq-{il}@0#0'][0]; sm = d[f'kq_soft_max-{il}@0#0'][0]; kqv = d[f'kqv-{il}@0#0'][0]
K = np.concatenate([kp, kd]); V = np.concatenate([vp, vd]); n = K.shape[0]
H = q.shape[1]; g = H // K.shape[1]; nkv = kq.shape[-1]
qf = q.astype(np.float16).astype(f32)[0]                       # [14][64]
Kf = np.repeat(K.astype(np.float16).astype(f32), g, 1).transpose(1, 0, 2)  # [14][n][64]
mine = dot_vec(qf[:, None, :], Kf)                             # [14][n]
dd = np.abs(mine - kq[:, 0, :n]); print('decode kq vs ggml: nonzero', (dd > 0).sum(), '/', dd.size)
pf = sm.astype(np.float16).astype(f32)[:, 0, :]                # [14][256]
Vt = np.zeros((H, V.shape[2], nkv), f32); Vt[:, :, :n] = np.repeat(V.astype(np.float16).astype(f32), g, 1).transpose(1, 2, 0)
mine = dot_vec(pf[:, None, :], Vt)                             # [14][64]
dd = np.abs(mine - kqv[:, 0, :]); print('decode kqv vs ggml: nonzero', (dd > 0).sum(), '/', dd.size)

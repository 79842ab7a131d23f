#!/usr/bin/env python3
"""Bit-exact emulation (numpy f32) of llama.cpp's AVX-512 non-flash attention
for a prompt batch, checked against captured kq / kq_soft_max / kqv tensors.

kq  = mul_mat(k_f16, q->f16): llamafile tinyBLAS<16,__m512> (n_tokens >= 2):
      16 lanes, lane i accumulates products at i, i+16, i+32, ... in order
      (fma of exact f16*f16 products), then _mm512_reduce_add_ps (GCC:
      halves 8, 4, then pairs (0,2),(1,3), then 0+1).
usage: emulate_attn.py LLAMA.npz [layer]"""
import sys, numpy as np
f32 = np.float32


def reduce16(acc):  # acc [..., 16] -> [...]; GCC _mm512_reduce_add_ps order
    t = (acc[..., 8:] + acc[..., :8]).astype(f32)
    t = (t[..., 4:] + t[..., :4]).astype(f32)
    t = np.stack([t[..., 0] + t[..., 2], t[..., 1] + t[..., 3]], -1).astype(f32)
    return (t[..., 0] + t[..., 1]).astype(f32)


def dot_tinyblas(a, b):  # a [..., k], b [..., k] f32 (exact f16 values) -> f32
    k = a.shape[-1]
    acc = np.zeros(np.broadcast_shapes(a.shape, b.shape)[:-1] + (16,), f32)
    for c in range(0, k, 16):
        acc = (acc + (a[..., c:c + 16] * b[..., c:c + 16]).astype(f32)).astype(f32)
    return reduce16(acc)


if __name__ == '__main__':
    d = np.load(sys.argv[1]); il = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    q = d[f'Qcur-{il}#3'][0]; k = d[f'Kcur-{il}#3'][0]
    v = d[f'Vcur-{il}#1'][0, 0].reshape(k.shape)
    kq = d[f'kq-{il}#0'][0]; sm = d[f'kq_soft_max-{il}#0'][0]; kqv = d[f'kqv-{il}#0'][0]
    n, H, hd = q.shape; g = H // k.shape[1]
    qf = q.astype(np.float16).astype(f32); kf = np.repeat(k.astype(np.float16).astype(f32), g, 1)
    vf = np.repeat(v.astype(np.float16).astype(f32), g, 1)
    # [h][t][s]
    mine = dot_tinyblas(qf.transpose(1, 0, 2)[:, :, None, :], kf.transpose(1, 0, 2)[:, None, :, :])
    dd = np.abs(mine - kq[:, :, :n])
    print('kq emulated vs ggml: max|d|', dd.max(), 'nonzero', (dd > 0).sum(), '/', dd.size)
    # kqv: tinyBLAS over n_kv = 256 (probabilities -> f16), V transposed
    nkv = kq.shape[-1]
    pf = sm.astype(np.float16).astype(f32)                      # [h][t][256]
    vt = np.zeros((H, hd, nkv), f32); vt[:, :, :n] = vf.transpose(1, 2, 0)
    mine = dot_tinyblas(pf[:, :, None, :], vt[:, None, :, :])    # [h][t][d]
    dd = np.abs(mine - kqv)
    print('kqv emulated vs ggml: max|d|', dd.max(), 'nonzero', (dd > 0).sum(), '/', dd.size)

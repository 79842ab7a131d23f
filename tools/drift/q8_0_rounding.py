#!/usr/bin/env python3
"""How often does shohin's Q8_0 activation quantizer (ggml-quants.c
quantize_row_q8_0_ref: d = amax/127, id = 1/d, roundf = ties away) disagree
with the one llama.cpp runs on x86 (arch/x86/quants.c quantize_row_q8_0:
id = 127/amax, _mm256_round_ps nearest = ties to even)? Counts differing
int8 values over llama.cpp's own captured activations (the inputs of every
Q5_0/Q8_0 matmul: attn_norm, kqv_out, ffn_norm, ffn_swiglu).
usage: q8_0_rounding.py LLAMA.npz"""
import sys, numpy as np
f32 = np.float32
d = np.load(sys.argv[1])
tot = diff = blocks_diff = nblocks = 0
for k in d.files:
    if not any(k.startswith(p) for p in ('attn_norm-', 'kqv_out-', 'ffn_norm-', 'ffn_swiglu-')) or '@' in k:
        continue
    x = d[k].reshape(-1, 32).astype(f32)
    amax = np.abs(x).max(1, keepdims=True)
    dd = (amax / f32(127)).astype(f32)
    with np.errstate(divide='ignore'):
        id_ref = np.where(dd != 0, f32(1) / dd, f32(0)).astype(f32)
        id_x86 = np.where(amax != 0, f32(127) / amax, f32(0)).astype(f32)
    v_ref = (x * id_ref).astype(f32); v_x86 = (x * id_x86).astype(f32)
    q_ref = np.sign(v_ref) * np.floor(np.abs(v_ref) + 0.5)   # roundf: half away from zero
    q_x86 = np.rint(v_x86)                                    # ties to even
    ne = (q_ref != q_x86)
    tot += ne.size; diff += ne.sum(); blocks_diff += ne.any(1).sum(); nblocks += ne.shape[0]
print(f'values differing: {diff}/{tot} ({diff/tot:.2e}); blocks with a difference: {blocks_diff}/{nblocks}')

#!/usr/bin/env python3
"""Compare shohin's dumped intermediates (SHOHIN_DRIFT_DIR/*.bin, written by
the temporary probe hook) with llama.cpp's (capture_llama.py .npz), layer by
layer. Prints max |diff| and max relative diff (|diff| / max|ref|) per op.

usage: compare.py LLAMA.npz SHOHIN_DIR [layers]
"""
import sys, os, numpy as np
d = np.load(sys.argv[1])
sd = sys.argv[2]
layers = [int(x) for x in sys.argv[3].split(',')] if len(sys.argv) > 3 else range(24)
MAP = [('attn_norm', 'attn_norm', 0), ('Qb', 'Qcur', 1), ('Kb', 'Kcur', 1), ('Vb', 'Vcur', 1),
       ('Qr', 'Qcur', 3), ('Kr', 'Kcur', 3), ('kqv_out', 'kqv_out', 0), ('ffn_inp', 'ffn_inp', 0),
       ('ffn_norm', 'ffn_norm', 0), ('ffn_gate', 'ffn_gate', 0), ('ffn_up', 'ffn_up', 0),
       ('ffn_swiglu', 'ffn_swiglu', 0), ('ffn_out', 'ffn_out', 0), ('l_out', 'l_out', 0)]
for il in layers:
    for sn, ln, k in MAP:
        p = os.path.join(sd, f'{sn}-{il}.bin')
        key = f'{ln}-{il}#{k}'
        if not os.path.exists(p) or key not in d.files:
            continue
        ref = d[key].reshape(-1)
        got = np.fromfile(p, dtype=np.float32)
        if got.size != ref.size:
            print(il, sn, 'size', got.size, ref.size); continue
        diff = np.abs(got.astype(np.float64) - ref)
        scale = np.abs(ref).max()
        ne = (diff > 0).sum()
        print(f'L{il:2d} {sn:10s} max|d| {diff.max():.3e} rel {diff.max()/scale:.2e} '
              f'mean|d| {diff.mean():.2e} nonzero {ne}/{diff.size} (ref max {scale:.3g})')
if os.path.exists(os.path.join(sd, 'logits.bin')) and 'logits' in d.files:
    sl = np.fromfile(os.path.join(sd, 'logits.bin'), dtype=np.float32).reshape(-1, d['logits'].shape[1])
    for i in range(min(len(sl), len(d['logits']))):
        print('logits step', i, 'max|d|', np.abs(sl[i] - d['logits'][i]).max())

#!/usr/bin/env python3
"""Write llama.cpp's captured tensors as shohin probe injections:
DIR/inject/<probe>-<layer>.bin (raw f32), so that shohin's forward continues
from llama.cpp's exact values at those points (isolates one op's error).
usage: inject.py LLAMA.npz DIR probe-layer[,probe-layer...]   e.g. Qb-0,Kb-0"""
import sys, os, numpy as np
MAP = {'attn_norm': ('attn_norm', 0), 'Qb': ('Qcur', 1), 'Kb': ('Kcur', 1), 'Vb': ('Vcur', 1),
       'Qr': ('Qcur', 3), 'Kr': ('Kcur', 3), 'kqv_out': ('kqv_out', 0), 'ffn_inp': ('ffn_inp', 0),
       'ffn_norm': ('ffn_norm', 0), 'ffn_gate': ('ffn_gate', 0), 'ffn_up': ('ffn_up', 0),
       'ffn_swiglu': ('ffn_swiglu', 0), 'ffn_out': ('ffn_out', 0), 'l_out': ('l_out', 0)}
d = np.load(sys.argv[1]); out = os.path.join(sys.argv[2], 'inject'); os.makedirs(out, exist_ok=True)
for f in os.listdir(out):
    os.remove(os.path.join(out, f))
for item in filter(None, sys.argv[3].split(',')):
    name, il = item.rsplit('-', 1)
    ln, k = MAP[name]
    d[f'{ln}-{il}#{k}'].astype(np.float32).reshape(-1).tofile(os.path.join(out, f'{name}-{il}.bin'))

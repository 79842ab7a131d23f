#!/usr/bin/env python3
"""Teacher-forced margins of shohin vs a llama.cpp golden: for each step, the
golden top-2 gap, shohin's logit(golden top1) - max(other logits), and the
max |dlogit| over the golden top-20.  Reads SHOHIN_DIR/logits.bin written by
drift-probe run with the golden's prompt ids and greedy ids.
usage: margins.py GOLDEN.json LOGITS.bin [step]"""
import sys, json, numpy as np
g = json.load(open(sys.argv[1]))
sl = np.fromfile(sys.argv[2], dtype=np.float32)
nv = sl.size // (len(g['greedy_ids']) + 1)
sl = sl.reshape(-1, nv)
worst = 0
for i, st in enumerate(g['steps']):
    if i >= len(sl):
        break
    ids, lg = st['top_ids'], st['top_logits']
    l = sl[i].astype(np.float64)
    d = max(abs(l[t] - v) for t, v in zip(ids, lg)); worst = max(worst, d)
    others = np.delete(l, ids[0])
    m = l[ids[0]] - others.max()
    flag = '' if m > 0 else '  <-- FLIP' if lg[0] - lg[1] >= 0.02 else '  (near tie)'
    print(f'step {i:2d} gold gap {lg[0]-lg[1]:.4f} shohin margin {m:+.4f} max|dlogit| {d:.4f}{flag}')
print('max |dlogit|', round(worst, 4))

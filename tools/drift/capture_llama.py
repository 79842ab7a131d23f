#!/usr/bin/env python3
"""Capture llama.cpp's intermediate tensors for one prompt batch.

Registers a ggml_backend_sched_eval_callback (llama_context_params.cb_eval)
through llama-cpp-python and copies every graph node whose name matches one of
the requested prefixes (e.g. "attn_norm-0", "Qcur-0", "kq_soft_max-0",
"l_out-3", "result_output") into an .npz file. Several nodes can share a name
(Qcur-0 before bias, after bias, after RoPE): they are stored as
"<name>#<k>" in graph order. Arrays are in ggml's row-major view, i.e. shape
(ne[3], ne[2], ne[1], ne[0]) with the trailing size-1 dims kept.

usage: PYTHONPATH=$P/src LLAMA_CPP_LIB_PATH=$P/bin \
       capture_llama.py MODEL.gguf GOLDEN.json OUT.npz [--norepack] [--steps N]
  --steps N: after the prompt batch, also feed the first N golden greedy ids
  one at a time; their nodes are stored with the suffix "@<step>".
"""
import ctypes, json, sys
import numpy as np
import llama_cpp
import llama_cpp.llama as L

args = sys.argv[1:]
norepack = '--norepack' in args
steps = 0
if '--steps' in args:
    steps = int(args[args.index('--steps') + 1])
model, gold_path, out = [a for a in args if not a.startswith('--') and not a.isdigit()][:3]
gold = json.load(open(gold_path))


class Tensor(ctypes.Structure):
    # ggml.h struct ggml_tensor (GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64,
    # GGML_MAX_SRC 10, GGML_MAX_NAME 64)
    _fields_ = [
        ('type', ctypes.c_int),
        ('buffer', ctypes.c_void_p),
        ('ne', ctypes.c_int64 * 4),
        ('nb', ctypes.c_size_t * 4),
        ('op', ctypes.c_int),
        ('op_params', ctypes.c_int32 * 16),
        ('flags', ctypes.c_int32),
        ('src', ctypes.c_void_p * 10),
        ('view_src', ctypes.c_void_p),
        ('view_offs', ctypes.c_size_t),
        ('data', ctypes.c_void_p),
        ('name', ctypes.c_char * 64),
        ('extra', ctypes.c_void_p),
        ('padding', ctypes.c_char * 8),
    ]


WANT = ('attn_norm-', 'Qcur-', 'Kcur-', 'Vcur-', 'kq-', 'kq_soft_max-', 'kqv-',
        'kqv_out-', 'ffn_inp-', 'ffn_norm-', 'ffn_gate-', 'ffn_up-', 'ffn_swiglu-',
        'ffn_silu-', 'ffn_gate_par-', 'ffn_out-', 'l_out-', 'result_norm',
        'result_output', 'inp_embd', 'norm-', 'attn_out-', 'ffn_down-')
store = {}
counts = {}
suffix = ['']


def wanted(name):
    return any(name == w or name.startswith(w) for w in WANT)


@llama_cpp.ggml_backend_sched_eval_callback
def cb(tp, ask, _ud):
    t = ctypes.cast(tp, ctypes.POINTER(Tensor)).contents
    name = t.name.decode(errors='replace')
    if ask:
        return wanted(name)
    if not wanted(name):
        return True
    ne = list(t.ne)
    nb = list(t.nb)
    if t.type == 0:
        dt, es = np.float32, 4
    elif t.type == 1:
        dt, es = np.float16, 2
    else:
        print('skip', name, 'type', t.type, file=sys.stderr)
        return True
    span = sum((ne[i] - 1) * nb[i] for i in range(4)) + es
    buf = (ctypes.c_char * span).from_address(t.data)
    raw = np.frombuffer(bytes(buf), dtype=np.uint8)
    arr = np.lib.stride_tricks.as_strided(
        raw.view(dt) if all(x % es == 0 for x in nb) else raw,
        shape=(ne[3], ne[2], ne[1], ne[0]),
        strides=(nb[3], nb[2], nb[1], nb[0]))
    arr = np.array(arr, dtype=np.float32)
    key = name + suffix[0]
    k = counts.get(key, 0)
    counts[key] = k + 1
    store[f'{key}#{k}'] = arr
    return True


orig_ctx = llama_cpp.llama_context_default_params


def ctx_params():
    p = orig_ctx()
    p.cb_eval = cb
    p.cb_eval_user_data = None
    return p


L.llama_cpp.llama_context_default_params = ctx_params
if norepack:
    orig_model = llama_cpp.llama_model_default_params

    def model_params():
        p = orig_model()
        p.use_extra_bufts = False
        return p
    L.llama_cpp.llama_model_default_params = model_params

llm = llama_cpp.Llama(model_path=model, n_ctx=1024, n_threads=2, logits_all=True,
                      verbose=False, seed=1)
llm.eval(gold['prompt_ids'])
logits = [np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)]
for i in range(steps):
    suffix[0] = f'@{i}'
    llm.eval([gold['greedy_ids'][i]])
    logits.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
store['logits'] = np.stack(logits)
np.savez(out, **store)
print('saved', len(store), 'tensors to', out, file=sys.stderr)

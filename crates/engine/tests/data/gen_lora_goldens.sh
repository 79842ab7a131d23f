#!/usr/bin/env bash
# Regenerates lora_goldens.json: llama.cpp (the peer, through its Python
# binding) runs the real Qwen2.5-Coder-0.5B fixture and the tiny qwen3 Q1_0
# model with the random rank-8 adapters that tests/lora/gen.rs writes
# (fixed seeds: the same bytes every run; the test checks their hash), at
# user scale 1 and 0.5, and records per case the prompt ids, its greedy ids
# and the top-20 logits after the prompt and after each greedy token.
# Then it merges the real adapter with llama-export-lora and with
# `shohin export-lora` and records their tensor-by-tensor comparison
# (names, types, dims, copied bytes, max |difference| of merged values).
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
export PYTHONPATH="$PEER/src:$PEER/src/vendor/llama.cpp/gguf-py" LLAMA_CPP_LIB_PATH="$PEER/bin"
cargo test --release -p shohin-engine --test lora -- --ignored --exact write_adapters >&2
cargo build --release -p shohin-cli >&2
D=target/tmp/lora
REAL=$(bash ../shared/fixtures/fetch-real-model.sh)
"$PEER/bin/llama-export-lora" -m "$REAL" --lora "$D/real.gguf" -o "$D/merged-llama.gguf" >&2
target/release/shohin export-lora -m "$REAL" --lora "$D/real.gguf" -o "$D/merged-shohin.gguf" >&2
python3 - "$D" > crates/engine/tests/data/lora_goldens.json <<'PY'
import sys, json, numpy as np
from llama_cpp import Llama
import gguf
d = sys.argv[1]
cases = json.load(open(f"{d}/cases.json"))

def top(llm):
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    t = np.argsort(-logits)[:20]
    return {"top_ids": t.tolist(), "top_logits": [round(float(logits[j]), 4) for j in t]}

def run(llm, ids, n_gen):
    llm.reset()
    llm.eval(ids)
    steps, greedy = [], []
    for _ in range(n_gen):
        s = top(llm)
        steps.append(s)
        greedy.append(s["top_ids"][0])
        llm.eval([greedy[-1]])
    return {"prompt_ids": ids, "greedy_ids": greedy, "steps": steps}

out = {}
for name, c in cases.items():
    r = {"fnv64": c["fnv64"]}
    for scale in ["1", "0.5"]:
        llm = Llama(model_path=c["model"], lora_path=c["adapter"], lora_scale=float(scale),
                    n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False, seed=1)
        r[scale] = run(llm, c["prompt_ids"], c["n_gen"])
        del llm
    out[name] = r

# llama-export-lora against shohin export-lora, tensor by tensor.
a = gguf.GGUFReader(f"{d}/merged-llama.gguf")
b = gguf.GGUFReader(f"{d}/merged-shohin.gguf")
ta = {t.name: t for t in a.tensors}
tb = {t.name: t for t in b.tensors}
lora = gguf.GGUFReader(cases["real"]["adapter"])
adapted = {t.name[:-len(".lora_a")] for t in lora.tensors if t.name.endswith(".lora_a")}
same = [t.name for t in a.tensors] == [t.name for t in b.tensors] and all(
    ta[n].tensor_type == tb[n].tensor_type and list(ta[n].shape) == list(tb[n].shape) for n in ta)
copied_equal, max_diff, n_diff, n_el, max_step = True, 0.0, 0, 0, 0.0
for n in ta:
    x, y = np.asarray(ta[n].data), np.asarray(tb[n].data)
    if n not in adapted:
        copied_equal &= x.tobytes() == y.tobytes()
        continue
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    diff = np.abs(x32 - y32)
    max_diff = max(max_diff, float(diff.max()))
    n_diff += int((x != y).sum())
    n_el += x.size
    if diff.max() > 0:
        # The F16 spacing at the largest differing value: one rounding step.
        i = int(np.argmax(diff))
        max_step = max(max_step, float(np.spacing(np.abs(x.reshape(-1)[i]).astype(np.float16))))
out["export"] = {
    "tensors": len(ta), "merged": len(adapted & set(ta)),
    "same_names_types_dims": bool(same), "copied_bytes_equal": bool(copied_equal),
    "max_abs_diff": max_diff, "max_f16_step": max_step,
    "n_diff": n_diff, "n_merged_elements": n_el,
}
print(json.dumps(out))
PY

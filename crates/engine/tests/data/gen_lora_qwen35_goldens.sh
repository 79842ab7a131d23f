#!/usr/bin/env bash
# Regenerates lora_qwen35_goldens.json: llama.cpp (the peer, through its
# Python binding) runs the synthetic Q8_0 and Q1_0 qwen35 models of
# tests/qwen35/gen.rs with the random rank-8 adapters that tests/lora/gen.rs
# writes for them (fixed seeds: the same bytes every run; the test checks
# the hashes of both), at user scale 1 and 0.5, and records per case the
# prompt ids, its greedy ids and the top-20 logits after the prompt and
# after each greedy token. Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
export PYTHONPATH="$PEER/src:$PEER/src/vendor/llama.cpp/gguf-py" LLAMA_CPP_LIB_PATH="$PEER/bin"
cargo test --release -p shohin-engine --test lora_qwen35 -- --ignored --exact write_adapters >&2
python3 - target/tmp/lora_qwen35 > crates/engine/tests/data/lora_qwen35_goldens.json <<'PY'
import sys, json, numpy as np
from llama_cpp import Llama
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
    r = {"fnv64": c["fnv64"], "model_fnv64": c["model_fnv64"]}
    for scale in ["1", "0.5"]:
        llm = Llama(model_path=c["model"], lora_path=c["adapter"], lora_scale=float(scale),
                    n_ctx=512, n_batch=512, n_threads=2, logits_all=True, verbose=False, seed=1)
        r[scale] = run(llm, c["prompt_ids"], c["n_gen"])
        del llm
    out[name] = r
print(json.dumps(out))
PY

#!/usr/bin/env bash
# Regenerates rope_goldens.json: llama.cpp (the peer, through its Python
# binding) runs the real Qwen2.5-Coder-0.5B fixture on a 1,200-token prompt
# (the first 1,200 tokens of the peer's own docs/build.md, BOS-less, as
# llama.cpp tokenizes it; the ids are stored, so the test needs neither the
# text nor a tokenizer) under three RoPE settings and records, per case, its
# greedy ids and the top-20 logits after the prompt and after each greedy
# token:
#   none      no scaling flags (the model has no rope.scaling keys),
#   yarn4     --rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 512,
#   linear2   --rope-scaling linear --rope-scale 2.
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
MODEL=$(bash ../shared/fixtures/fetch-real-model.sh)
export PYTHONPATH="$PEER/src:$PEER/src/vendor/llama.cpp/gguf-py" LLAMA_CPP_LIB_PATH="$PEER/bin"
python3 - "$MODEL" "$PEER/src/vendor/llama.cpp/docs/build.md" \
  > crates/engine/tests/data/rope_goldens.json <<'PY'
import sys, json, numpy as np
from llama_cpp import Llama
model, text_path = sys.argv[1], sys.argv[2]
N_PROMPT, N_GEN = 1200, 8
# llama_rope_scaling_type: NONE 0, LINEAR 1, YARN 2.
CASES = {
    "none": {},
    "yarn4": {"rope_scaling_type": 2, "rope_freq_scale": 0.25, "yarn_orig_ctx": 512},
    "linear2": {"rope_scaling_type": 1, "rope_freq_scale": 0.5},
}

def top(llm):
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    t = np.argsort(-logits)[:20]
    return {"top_ids": t.tolist(), "top_logits": [round(float(logits[j]), 4) for j in t]}

out = {"model": model.rsplit("/", 1)[-1], "n_gen": N_GEN}
ids = None
for name, kw in CASES.items():
    llm = Llama(model_path=model, n_ctx=2048, n_batch=512, n_threads=2,
                logits_all=True, verbose=False, seed=1, **kw)
    if ids is None:
        text = open(text_path, encoding="utf-8").read()
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)[:N_PROMPT]
        assert len(ids) == N_PROMPT
        out["prompt_ids"] = ids
    llm.reset()
    llm.eval(ids)
    steps, greedy = [], []
    for i in range(N_GEN + 1):
        s = top(llm)
        steps.append(s)
        if i == N_GEN:
            break
        greedy.append(s["top_ids"][0])
        llm.eval([greedy[-1]])
    out[name] = {"flags": kw, "greedy_ids": greedy, "steps": steps}
    del llm
print(json.dumps(out))
PY

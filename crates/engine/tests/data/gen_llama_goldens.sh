#!/usr/bin/env bash
# Regenerates llama_goldens.json: llama.cpp (the peer, through its Python
# binding) runs the real Llama-family fixture (SmolLM2-135M-Instruct Q4_1,
# scripts/fetch-llama-model.sh) on a few prompts and records, per prompt,
# its token ids (llama.cpp's tokenizer, parse_special), the greedy ids and
# the top-20 logits after the prompt and after each greedy token.
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
MODEL=$(bash scripts/fetch-llama-model.sh)
export PYTHONPATH="$PEER/src" LLAMA_CPP_LIB_PATH="$PEER/bin"
# The fixture with Llama 3.1-style rope_freqs.weight divisors (tests/llama.rs).
cargo test --release -p shohin-engine --test llama -- --ignored --exact write_models >&2
python3 - "$MODEL" target/tmp/llama/smollm2-rope-freqs.gguf > crates/engine/tests/data/llama_goldens.json <<'PY'
import sys, json, hashlib, numpy as np
from llama_cpp import Llama
model, freqs_model = sys.argv[1], sys.argv[2]
prompts = {
    "story": ("Once upon a time", 32),
    "chat": ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
             "<|im_start|>user\nWrite a Python function that returns the n-th Fibonacci number.<|im_end|>\n"
             "<|im_start|>assistant\n", 48),
    "digits": ("In 1969, 3 astronauts flew 384400 km; that's 12,345.678 units of   whitespace!", 16),
}
def run(llm, text, n):
    llm.reset()
    ids = llm.tokenize(text.encode(), add_bos=True, special=True)
    llm.eval(ids)
    steps, greedy = [], []
    for i in range(n + 1):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        top = np.argsort(-logits)[:20]
        steps.append({"top_ids": top.tolist(), "top_logits": [round(float(logits[j]), 4) for j in top]})
        if i == n:
            break
        greedy.append(int(top[0]))
        llm.eval([greedy[-1]])
    return {"prompt": text, "prompt_ids": ids, "greedy_ids": greedy,
            "greedy_text": llm.detokenize(greedy).decode("utf8", "replace"), "steps": steps}

def load(path):
    return Llama(model_path=path, n_ctx=1024, n_batch=512, n_threads=2, logits_all=True, verbose=False, seed=1)

llm = load(model)
out = {"model": model.rsplit("/", 1)[-1],
       "sha256": hashlib.sha256(open(model, "rb").read()).hexdigest(), "cases": {}}
for name, (text, n) in prompts.items():
    out["cases"][name] = run(llm, text, n)
del llm
llm = load(freqs_model)
out["rope_freqs"] = {"chat": run(llm, *prompts["chat"])}
print(json.dumps(out))
PY

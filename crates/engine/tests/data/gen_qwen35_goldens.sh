#!/usr/bin/env bash
# Regenerates qwen35_goldens.json: llama.cpp (the peer, through its Python
# binding) runs the synthetic qwen35 models that tests/qwen35/gen.rs writes
# (fixed seed: the same bytes every run; the test checks their hash) and
# records, per model and case, the ids it evaluated, its greedy ids and
# the top-20 logits after the prompt and after each greedy token. Cases:
# `short` (12 tokens), `long` (300: five DeltaNet chunks), `turn2` (short,
# 4 of its greedy tokens, then 15 new ones, evaluated from scratch: what a
# second chat turn that reuses the first must match). The models are those
# of gen::MODELS (F16, Q8_0, Q1_0 = type 41, g64 Q2_0 = type 42), in that
# order: adding one appends its entry and leaves the others byte-identical.
# Twice: with the peer's native (AVX-512) build -> qwen35_goldens.json, and
# with an AVX2-only build of the same source (built here once, ~5 min, in
# $PEER-avx2) -> qwen35_goldens_avx2.json; the two builds sum f32 vectors in
# 16 and 8 lanes, which is how far llama.cpp agrees with itself.
# Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/../../../.."
PEER=$(bash ../shared/peer/build-llama-cpp.sh)
AVX2="$PEER-avx2"
if [ ! -f "$AVX2/build/bin/libllama.so" ]; then
  cmake -S "$PEER/src/vendor/llama.cpp" -B "$AVX2/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DGGML_AVX512=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$AVX2/build" -j"$(nproc)" --target llama ggml-cpu >&2
fi
export PYTHONPATH="$PEER/src:$PEER/src/vendor/llama.cpp/gguf-py"
cargo test --release -p shohin-engine --test qwen35 -- --ignored --exact write_models >&2
for LIB in "$PEER/bin:qwen35_goldens.json" "$AVX2/build/bin:qwen35_goldens_avx2.json"; do
LLAMA_CPP_LIB_PATH="${LIB%%:*}" python3 - target/tmp/qwen35 > "crates/engine/tests/data/${LIB#*:}" <<'PY'
import sys, json, numpy as np
from llama_cpp import Llama
d = sys.argv[1]
cases = json.load(open(f"{d}/cases.json"))

def fnv64(b):
    h = 0xcbf29ce484222325
    for x in b:
        h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
    return h

def top(llm):
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    t = np.argsort(-logits)[:20]
    return {"top_ids": t.tolist(), "top_logits": [round(float(logits[j]), 4) for j in t]}

def run(llm, ids, n_gen):
    llm.reset()
    llm.eval(ids)
    steps, greedy = [], []
    for _ in range(n_gen + 1):
        s = top(llm)
        steps.append(s)
        if len(steps) > n_gen:
            break
        greedy.append(s["top_ids"][0])
        llm.eval([greedy[-1]])
    return {"ids": ids, "greedy": greedy, "steps": steps}

out = {}
for name in cases["models"]:
    path = f"{d}/{name}.gguf"
    llm = Llama(model_path=path, n_ctx=1024, n_batch=512, n_threads=2,
                logits_all=True, verbose=False, seed=1)
    r = {"fnv64": str(fnv64(open(path, "rb").read()))}
    r["short"] = run(llm, cases["short"], 8)
    r["long"] = run(llm, cases["long"], 4)
    seq = cases["short"] + r["short"]["greedy"][:cases["turn2_keep"]] + cases["turn2_new"]
    r["turn2"] = run(llm, seq, 4)
    out[name] = r
    del llm
print(json.dumps(out))
PY
done

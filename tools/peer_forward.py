#!/usr/bin/env python3
"""llama.cpp's logits on a synthetic model, teacher-forced with the float64
reference's prompt and greedy ids (from <name>.f64.json), to tell engine bugs
from the arithmetic llama.cpp itself does (Q8_0 / Q8_K activations, f16 KV
cache and attention). Prints, per step, llama.cpp's largest |dlogit| against
the reference over the reference's top-20 ids; with --json writes the same
top-20 layout as the reference, llama.cpp's logits in place of the f64 ones.

Only for formats upstream llama.cpp knows (Q1_0, Q2_0 g64, TQ1_0, TQ2_0; not
the PrismML g128 layout nor type 142). Needs the llama-cpp-python binding:

    LLAMA_CPP_LIB_PATH=<peer>/bin PYTHONPATH=<peer>/src \\
        tools/peer_forward.py crates/engine/tests/data/synth/tq1_0 [--json OUT]
"""

import argparse
import json

import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stem", help="path without extension: STEM.gguf and STEM.f64.json")
    ap.add_argument("--json", help="write llama.cpp's logits at the reference's top-20 ids")
    a = ap.parse_args()
    with open(a.stem + ".f64.json") as f:
        ref = json.load(f)
    llm = Llama(model_path=a.stem + ".gguf", n_ctx=256, n_threads=2, logits_all=True,
                verbose=False, seed=1)
    llm.eval(ref["prompt_ids"])
    steps, worst = [], 0.0
    for i, st in enumerate(ref["steps"]):
        lg = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        d = max(abs(lg[t] - l) for t, l in zip(st["top_ids"], st["top_logits"]))
        worst = max(worst, d)
        print(f"step {i}: max |dlogit| {d:.4f}, top-1 {int(np.argmax(lg))} (f64 {st['top_ids'][0]})")
        steps.append({"top_ids": st["top_ids"], "top_logits": [round(float(lg[t]), 6) for t in st["top_ids"]]})
        if i + 1 < len(ref["steps"]):
            llm.eval([ref["greedy_ids"][i]])
    print(f"max |dlogit| llama.cpp vs f64: {worst:.4f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"prompt_ids": ref["prompt_ids"], "greedy_ids": ref["greedy_ids"], "steps": steps}, f)


if __name__ == "__main__":
    main()

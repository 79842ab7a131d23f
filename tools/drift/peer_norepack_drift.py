import sys, json, numpy as np, llama_cpp
from llama_cpp import Llama
orig = llama_cpp.llama_model_default_params
def patched():
    p = orig(); p.use_extra_bufts = False; return p
import llama_cpp.llama as L
L.llama_cpp.llama_model_default_params = patched
model, gold = sys.argv[1], json.load(open(sys.argv[2]))
llm = Llama(model_path=model, n_ctx=1024, n_threads=2, logits_all=True, verbose=False, seed=1)
llm.eval(gold['prompt_ids'])
worst=0
for i, fed in enumerate(gold['greedy_ids']):
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    st = gold['steps'][i]
    d = max(abs(logits[t]-l) for t,l in zip(st['top_ids'], st['top_logits']))
    worst=max(worst,d)
    llm.eval([fed])
print(sys.argv[2].split('/')[-1], 'llama.cpp without repack vs golden: max |dlogit| =', round(worst,4))

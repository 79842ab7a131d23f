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
for i, fed in enumerate(gold['greedy_ids']):
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    st = gold['steps'][i]
    gap = st['top_logits'][0]-st['top_logits'][1]
    top = int(np.argmax(logits))
    s = np.sort(logits)[::-1]
    print(i, 'gold gap %.4f'%gap, 'norepack top1 ok' if top==st['top_ids'][0] else 'norepack FLIPS', 'own gap %.4f'%(s[0]-s[1]))
    llm.eval([fed])

#!/usr/bin/env python3
"""gguf-py's SpecialVocab (what convert_hf_to_gguf.py's _set_vocab_gpt2
writes after the merges) on the checkpoint's tokenizer with each case of
special_vocab_cases.json applied (post_processor, normalizer and
tokenizer_config.json replaced; null removes tokenizer_config.json): the
keys it writes in order, rendered as describe_gguf.py does.

usage: special_vocab_reference.py CHECKPOINT_DIR CASES.json > out.json
"""
import json, shutil, sys, tempfile
from pathlib import Path
import gguf

ck, cases = Path(sys.argv[1]), json.load(open(sys.argv[2]))
tok = json.load(open(ck / 'tokenizer.json'))
out = {}
for c in cases:
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        shutil.copy(ck / 'config.json', d / 'config.json')
        t = dict(tok, post_processor=c['post_processor'])
        if 'normalizer' in c:
            t['normalizer'] = c['normalizer']
        (d / 'tokenizer.json').write_text(json.dumps(t))
        if c['tokenizer_config'] is not None:
            (d / 'tokenizer_config.json').write_text(json.dumps(c['tokenizer_config']))
        sv = gguf.SpecialVocab(d, load_merges=False)
        gw = gguf.GGUFWriter(path=None, arch='llama')
        sv.add_to_gguf(gw, quiet=True)
        kv = []
        for k, v in gw.kv_data[0].items():
            if not k.startswith('tokenizer.'):
                continue
            val = v.value
            s = ('true' if val else 'false') if isinstance(val, bool) else str(val)
            kv.append([k, int(v.type), s])
        out[c['name']] = kv
json.dump(out, sys.stdout, indent=1)
print()
